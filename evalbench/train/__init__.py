"""Preference training: losses, β/lr schedules, WPO weights, data and the trainer loop.

Import-light on purpose: nothing here imports torch. `evalbench.train.losses` and
`evalbench.train.weights` are torch modules (import them where they are used);
`evalbench.train.schedules` is plain Python.
"""
