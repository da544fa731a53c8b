"""The local training text of the embedded tiny model: hermetic, deterministic, chat-shaped.

No downloads are possible (CI, offline users), so the tiny model learns from text that ships in
this file: a few hundred plain English sentences grouped by topic, plus chat conversations
generated from templates (arithmetic, definitions, capitals, opposites, lists, short "tell me
about" answers, greetings). The conversations are rendered exactly as the model's chat template
renders them, so the model learns to close every assistant turn with `<|im_end|>`; that is what
lets vLLM stop generation on its own instead of always running to `max_tokens`.

Optionally the instructions and (truncated) answers of the local benchmark files can be mixed
in (`data_dir_documents`). Either way `Corpus.sha256` identifies the exact text, and the build
records it, so the same seed on the same corpus gives identical bytes.

Everything here is pure Python (no torch, no tokenizers): importing it is cheap.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from evalbench.io import canonical_json, sha256_text

# Bump when the generated text changes on purpose; it is part of the corpus hash input only
# through the text itself, but keeping a version makes `tiny_meta.json` easier to read.
CORPUS_VERSION = 1
# The corpus does not depend on the model seed: one corpus, many seeds.
_CORPUS_SEED = 20240601

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (END_OF_TEXT, IM_START, IM_END)

# The chat template shipped with the tiny model (ChatML). `render_chatml` below is its Python
# twin; a unit test checks that the two agree byte for byte.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\n' }}"
    "{%- endif %}"
)

DEFAULT_SYSTEM = "You are a helpful assistant."


class Corpus(NamedTuple):
    """Training documents (each a complete text: a paragraph or a rendered conversation)."""

    documents: tuple[str, ...]
    sha256: str
    sources: tuple[str, ...]

    @property
    def n_chars(self) -> int:
        return sum(len(d) for d in self.documents)


def render_chatml(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
    """Render messages as `CHAT_TEMPLATE` does: `<|im_start|>{role}\\n{content}<|im_end|>\\n` each."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def corpus_hash(documents: Sequence[str]) -> str:
    """sha256 of the canonical JSON list of documents (order matters: it is the training order)."""
    return sha256_text(canonical_json(list(documents)))


# ---------------------------------------------------------------------------------------------
# hand-written text

TOPIC_SENTENCES: dict[str, tuple[str, ...]] = {
    "the sea": (
        "The sea covers most of the surface of the Earth.",
        "Waves roll onto the beach and pull the sand back with them.",
        "Fish, whales and many small plants live in the sea.",
        "Sailors once used the stars to find their way across the sea.",
        "The water of the sea is salty, so people cannot drink it.",
        "On a calm day the sea is quiet and the water looks like glass.",
        "Storms at sea can make waves as tall as a house.",
        "The tide rises and falls twice a day because of the moon.",
    ),
    "the weather": (
        "The weather changes from day to day and from season to season.",
        "Rain falls from clouds when the air cannot hold more water.",
        "In winter the days are short and the nights are long and cold.",
        "A warm wind from the south often brings clear skies.",
        "Snow covers the hills in the coldest months of the year.",
        "Many people check the weather before they leave the house.",
        "Thunder is the sound that lightning makes when it heats the air.",
        "After the rain, a rainbow sometimes appears in the sky.",
    ),
    "cooking": (
        "Cooking turns simple ingredients into a warm meal.",
        "A good soup needs time, water, salt and fresh vegetables.",
        "Bread is made from flour, water, salt and yeast.",
        "Always wash your hands before you start to cook.",
        "A sharp knife is safer than a dull one because it does not slip.",
        "Rice should rest for a few minutes after it is cooked.",
        "Taste the food as you cook and add salt a little at a time.",
        "Many families share their favorite recipes from one generation to the next.",
    ),
    "gardening": (
        "A garden needs sun, water and good soil to grow well.",
        "Seeds are planted in spring when the ground is warm.",
        "Weeds take water and light away from the plants you want to grow.",
        "Tomatoes grow best in a sunny place with regular water.",
        "Bees visit flowers and help plants make fruit and seeds.",
        "Leaves that fall in autumn can be turned into rich soil.",
        "A small garden on a balcony can still grow herbs and flowers.",
        "Gardening is a quiet way to spend time outside.",
    ),
    "books": (
        "Books let us visit places we have never seen.",
        "A library is a building where people can borrow books for free.",
        "Reading every day helps children learn new words.",
        "Some books tell stories, and others explain how the world works.",
        "A good story has a clear beginning, middle and end.",
        "Many people like to read a book before they go to sleep.",
        "Writers often rewrite a page many times before it feels right.",
        "Old books have a special smell that many readers love.",
    ),
    "music": (
        "Music can make people feel happy, calm or sad.",
        "A song is made of a melody, a rhythm and often some words.",
        "The piano has black keys and white keys.",
        "Learning an instrument takes patience and daily practice.",
        "People in every culture sing and make music together.",
        "A drum keeps the beat so that the other players stay together.",
        "Some people listen to music while they work or study.",
        "A choir is a group of people who sing together.",
    ),
    "computers": (
        "A computer follows instructions that are written as programs.",
        "The memory of a computer holds the data it is working on.",
        "A program is a list of steps that tells the computer what to do.",
        "Computers store numbers, letters and pictures as bits.",
        "Programmers test their code to find and fix mistakes.",
        "A network lets computers send messages to each other.",
        "It is a good idea to save your work often.",
        "A bug is a mistake in a program that makes it behave in the wrong way.",
    ),
    "animals": (
        "Dogs are loyal animals that like to play and run.",
        "Cats sleep for many hours every day.",
        "Birds build nests to keep their eggs safe and warm.",
        "Horses can sleep while they are standing up.",
        "Elephants are the largest animals that live on land.",
        "Owls hunt at night and can see well in the dark.",
        "Frogs begin their lives in water as small tadpoles.",
        "Many animals sleep through the winter when food is hard to find.",
    ),
    "health": (
        "Sleep helps the body and the mind recover from the day.",
        "Drinking enough water is important for good health.",
        "A short walk every day is good for the heart.",
        "Fruit and vegetables give the body vitamins it needs.",
        "Washing your hands helps stop the spread of illness.",
        "Stretching before exercise can help prevent injury.",
        "It is wise to rest when you feel tired or sick.",
        "A doctor can give advice when you are not feeling well.",
    ),
    "travel": (
        "Travel lets people see new places and meet new people.",
        "A map helps you find the best way to get somewhere.",
        "Trains are a comfortable way to travel between cities.",
        "It is useful to learn a few words of the local language before a trip.",
        "Pack light so that your bag is easy to carry.",
        "Many travelers keep a small notebook to write about their day.",
        "Airports are busy places full of people coming and going.",
        "A good trip often begins with a simple plan.",
    ),
    "work": (
        "A clear plan makes a big task easier to finish.",
        "Good teams share ideas and help each other.",
        "Short breaks during the day help people stay focused.",
        "It is polite to answer messages in a reasonable time.",
        "Writing a list of tasks each morning can help you stay organized.",
        "Meetings work best when everyone knows the goal.",
        "Asking a question early can save a lot of time later.",
        "Finishing one task before starting the next often saves effort.",
    ),
    "science": (
        "Scientists ask questions and test their ideas with experiments.",
        "Water boils at one hundred degrees Celsius at sea level.",
        "The Earth moves around the Sun once a year.",
        "Plants use sunlight to turn water and air into food.",
        "Light travels faster than sound.",
        "Ice is water that has frozen into a solid.",
        "The moon reflects the light of the Sun.",
        "Magnets pull on iron and push or pull on other magnets.",
    ),
    "cities": (
        "A city is a large place where many people live and work.",
        "Parks give people in cities a place to rest and play.",
        "Buses and trains help people move around the city.",
        "Old cities often have narrow streets and stone buildings.",
        "At night the lights of a city can be seen from far away.",
        "Markets in the city sell fruit, bread, fish and flowers.",
        "Tall buildings in a city are called skyscrapers.",
        "Many cities grew up beside rivers or near the sea.",
    ),
    "friendship": (
        "A good friend listens when you need to talk.",
        "Friends help each other in hard times.",
        "Sharing a meal is a simple way to spend time with friends.",
        "It is kind to remember the birthday of a friend.",
        "Friendship grows with trust and time.",
        "Saying thank you shows that you value what someone did.",
        "Old friends can pick up where they left off, even after many years.",
        "A kind word can make a friend's day better.",
    ),
    "history": (
        "History is the study of what happened in the past.",
        "People long ago wrote on clay, stone and paper.",
        "The wheel was one of the most useful inventions in history.",
        "Museums keep old objects so that we can learn from them.",
        "Many old roads were first built to connect towns and markets.",
        "Letters and diaries help historians understand daily life in the past.",
        "The printing press made books much cheaper to produce.",
        "Every family has its own history and its own stories.",
    ),
    "sports": (
        "Sports keep the body strong and teach people to work as a team.",
        "In football, two teams try to kick the ball into the other goal.",
        "Swimming uses almost every muscle in the body.",
        "Runners train for many months before a long race.",
        "A good player respects the rules and the other team.",
        "Tennis can be played by two or four people.",
        "Cycling is a popular sport and a cheap way to travel.",
        "Practice matters more than talent in most sports.",
    ),
}

# Short helpful answers to open requests: they teach the assistant's register and length.
GENERIC_ANSWERS: tuple[tuple[str, str], ...] = (
    ("How can I sleep better?",
     "Go to bed at the same time every night, keep the room dark and quiet, and avoid screens "
     "before sleep."),
    ("How do I learn a new language?",
     "Practice a little every day, learn common words first, and try to speak with other people "
     "as soon as you can."),
    ("Give me a tip for studying.",
     "Study in short sessions with small breaks, and test yourself instead of only reading your "
     "notes."),
    ("How do I make a cup of tea?",
     "Boil water, pour it over the tea leaves or a tea bag, wait three to five minutes, and then "
     "remove the tea."),
    ("How can I save money?",
     "Write down what you spend, set a small amount aside each month, and avoid buying things "
     "you do not need."),
    ("What should I pack for a short trip?",
     "Pack clothes for each day, a toothbrush, your phone charger, any medicine you need and a "
     "copy of your tickets."),
    ("How do I write a good email?",
     "Use a clear subject, say what you need in the first sentence, keep it short and end with a "
     "polite greeting."),
    ("How can I stay focused at work?",
     "Turn off notifications, work on one task at a time and take a short break every hour."),
    ("How do I start running?",
     "Start with short, easy runs, wear comfortable shoes and add a little more distance each "
     "week."),
    ("How do I keep a plant healthy?",
     "Give it the right amount of light, water it when the soil is dry and remove dead leaves."),
    ("Can you help me plan my day?",
     "Sure. Write down your three most important tasks, do the hardest one first and leave time "
     "for breaks."),
    ("What is a good way to relax?",
     "Take a slow walk, listen to calm music or read a book for a while."),
    ("How do I prepare for a job interview?",
     "Learn about the company, practice answers to common questions and prepare a few questions "
     "of your own."),
    ("How can I be a better listener?",
     "Look at the speaker, do not interrupt, and repeat what you heard in your own words."),
    ("How do I clean a window?",
     "Mix water with a little soap, wipe the glass with a soft cloth and dry it with a clean "
     "towel."),
    ("What makes a good story?",
     "A good story has an interesting character, a clear problem and an ending that feels "
     "earned."),
    ("How do I fix a slow computer?",
     "Close programs you do not use, restart the computer and remove files you no longer "
     "need."),
    ("Explain why the sky is blue.",
     "Sunlight contains every color, and the air scatters blue light more than red light, so "
     "the sky looks blue."),
    ("Why do leaves change color in autumn?",
     "In autumn plants stop making the green pigment in their leaves, so the yellow and red "
     "colors can be seen."),
    ("Why do we need sleep?",
     "Sleep lets the body repair itself and helps the brain store what it learned during the "
     "day."),
    ("Summarize the benefits of exercise.",
     "Exercise makes the heart and muscles stronger, improves sleep and can lift your mood."),
    ("Give me a reason to read more books.",
     "Reading teaches new words and ideas, and it is a calm way to spend time."),
    ("Thank you!", "You are welcome! Let me know if you need anything else."),
    ("Thanks for your help.", "You are welcome. I am glad I could help."),
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! What would you like to talk about?"),
    ("Good morning!", "Good morning! I hope you have a good day. How can I help?"),
    ("Who are you?", "I am a small assistant. I can answer simple questions."),
    ("What can you do?",
     "I can answer simple questions, do small sums and write short sentences."),
    ("Tell me a joke.",
     "Why did the student eat his homework? Because the teacher said it was a piece of cake."),
)

DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("a cat", "a small animal with soft fur that many people keep as a pet"),
    ("a dog", "a friendly animal that people keep as a pet or for work"),
    ("a bird", "an animal with feathers and wings, and most birds can fly"),
    ("a fish", "an animal that lives in water and breathes through gills"),
    ("a tree", "a tall plant with a wooden trunk, branches and leaves"),
    ("a river", "a large stream of water that flows toward the sea or a lake"),
    ("a mountain", "a very high hill with steep sides"),
    ("a city", "a large town where many people live and work"),
    ("a book", "a set of printed pages held together, with words or pictures to read"),
    ("a computer", "a machine that stores data and follows instructions in programs"),
    ("a program", "a list of instructions that a computer can follow"),
    ("a song", "a short piece of music with words that people sing"),
    ("a teacher", "a person who helps other people learn"),
    ("a doctor", "a person who helps sick people get better"),
    ("a farmer", "a person who grows crops or keeps animals for food"),
    ("a library", "a place where people can read and borrow books"),
    ("a school", "a place where children go to learn"),
    ("a bridge", "a structure that lets people cross over a river or a road"),
    ("a clock", "a device that shows the time"),
    ("a map", "a drawing that shows where places are"),
    ("a planet", "a large round object that moves around a star"),
    ("the sun", "the star at the center of our solar system"),
    ("the moon", "the natural satellite that moves around the Earth"),
    ("rain", "water that falls from clouds in drops"),
    ("snow", "frozen water that falls from clouds as soft white flakes"),
    ("bread", "a food made by baking a dough of flour, water and yeast"),
    ("soup", "a warm liquid food made by cooking vegetables, meat or fish in water"),
    ("a garden", "a piece of land where people grow flowers, fruit or vegetables"),
    ("a friend", "a person you know well and like to spend time with"),
    ("a team", "a group of people who work or play together"),
    ("music", "sounds arranged in a way that is pleasant to hear"),
    ("history", "the study of events in the past"),
    ("science", "the study of the natural world through observation and experiment"),
    ("a word", "a unit of language that has a meaning"),
    ("a sentence", "a group of words that expresses a complete thought"),
    ("a question", "a sentence that asks for an answer"),
    ("a number", "a value used for counting and measuring"),
    ("a house", "a building where people live"),
    ("a car", "a vehicle with four wheels and an engine"),
    ("a train", "a line of connected cars that runs on rails"),
)

CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"),
    ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
    ("Australia", "Canberra"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Poland", "Warsaw"), ("Greece", "Athens"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("South Korea", "Seoul"), ("Chile", "Santiago"), ("Morocco", "Rabat"),
    ("the United Kingdom", "London"), ("the United States", "Washington, D.C."),
)

OPPOSITES: tuple[tuple[str, str], ...] = (
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("day", "night"),
    ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("old", "new"), ("early", "late"),
    ("full", "empty"), ("long", "short"), ("strong", "weak"), ("high", "low"), ("wet", "dry"),
    ("easy", "hard"), ("near", "far"), ("loud", "quiet"), ("clean", "dirty"), ("rich", "poor"),
)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "colors": ("red", "blue", "green", "yellow", "orange", "purple", "white", "black", "brown"),
    "fruits": ("apples", "bananas", "oranges", "pears", "grapes", "cherries", "lemons", "plums"),
    "animals": ("dogs", "cats", "horses", "cows", "sheep", "lions", "bears", "rabbits", "owls"),
    "vegetables": ("carrots", "potatoes", "onions", "beans", "peas", "tomatoes", "cabbages"),
    "musical instruments": ("the piano", "the guitar", "the violin", "the drum", "the flute",
                            "the trumpet"),
    "sports": ("football", "tennis", "swimming", "running", "cycling", "basketball", "rowing"),
    "planets": ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"),
    "days of the week": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                         "Sunday"),
    "things in a kitchen": ("a pan", "a knife", "a spoon", "a plate", "a cup", "an oven"),
    "kinds of weather": ("rain", "snow", "wind", "sunshine", "fog", "hail", "thunder"),
}

NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)


# ---------------------------------------------------------------------------------------------
# generators: each returns a list of (user, assistant) pairs


def _join_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _arithmetic(rng: random.Random, n: int) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(n):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        op = rng.choice(("plus", "minus", "times"))
        if op == "minus" and b > a:
            a, b = b, a
        result = {"plus": a + b, "minus": a - b, "times": a * b}[op]
        question = rng.choice((f"What is {a} {op} {b}?", f"Compute {a} {op} {b}.",
                               f"How much is {a} {op} {b}?"))
        answer = rng.choice((f"{a} {op} {b} is {result}.", f"The answer is {result}.",
                             f"{a} {op} {b} equals {result}."))
        pairs.append((question, answer))
    for i, word in enumerate(NUMBER_WORDS):
        pairs.append((f"How do you write the number {i} in words?", f"The number {i} is written as {word}."))
    return pairs


def _definitions(rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for thing, meaning in DEFINITIONS:
        what = thing[0].upper() + thing[1:]
        for question in (f"What is {thing}?", f"Define {thing}.", f"Explain what {thing} is."):
            pairs.append((question, f"{what} is {meaning}."))
    return pairs


def _capitals(rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for country, capital in CAPITALS:
        pairs.append((f"What is the capital of {country}?", f"The capital of {country} is {capital}."))
        pairs.append((f"Which city is the capital of {country}?", f"{capital} is the capital of {country}."))
    return pairs


def _opposites(rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for a, b in OPPOSITES:
        pairs.append((f"What is the opposite of {a}?", f"The opposite of {a} is {b}."))
        pairs.append((f"What is the opposite of {b}?", f"The opposite of {b} is {a}."))
    return pairs


def _lists(rng: random.Random, n: int) -> list[tuple[str, str]]:
    pairs = []
    names = sorted(CATEGORIES)
    for _ in range(n):
        category = rng.choice(names)
        k = rng.randint(2, 4)
        items = rng.sample(CATEGORIES[category], k)
        word = NUMBER_WORDS[k]
        question = rng.choice((f"Name {word} {category}.", f"List {word} {category}.",
                               f"Can you give me {word} {category}?"))
        answer = rng.choice((f"Here are {word} {category}: {_join_list(items)}.",
                             f"Sure: {_join_list(items)}."))
        pairs.append((question, answer))
    return pairs


def _topics(rng: random.Random, n: int) -> list[tuple[str, str]]:
    pairs = []
    topics = sorted(TOPIC_SENTENCES)
    for _ in range(n):
        topic = rng.choice(topics)
        sentences = TOPIC_SENTENCES[topic]
        kind = rng.randrange(3)
        if kind == 0:
            question = rng.choice((f"Write a sentence about {topic}.", f"Say something about {topic}.",
                                   f"Give me one fact about {topic}."))
            answer = rng.choice(sentences)
        else:
            k = rng.randint(2, 4)
            question = rng.choice((f"Tell me about {topic}.", f"Write a short paragraph about {topic}.",
                                   f"What do you know about {topic}?", f"Describe {topic} briefly."))
            answer = " ".join(rng.sample(sentences, k))
        pairs.append((question, answer))
    return pairs


def chat_pairs(rng: random.Random) -> list[tuple[str, str]]:
    """Every templated (user, assistant) pair, in a fixed order for a given `rng` state."""
    pairs: list[tuple[str, str]] = []
    pairs += list(GENERIC_ANSWERS) * 3
    pairs += _arithmetic(rng, 400)
    pairs += _definitions(rng)
    pairs += _capitals(rng)
    pairs += _opposites(rng)
    pairs += _lists(rng, 300)
    pairs += _topics(rng, 600)
    return pairs


def _conversations(rng: random.Random, pairs: list[tuple[str, str]]) -> list[str]:
    """Render pairs as 1- or 2-turn conversations, some with a system message."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    docs = []
    i = 0
    while i < len(order):
        turns = 2 if rng.random() < 0.25 and i + 1 < len(order) else 1
        messages: list[dict[str, str]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": DEFAULT_SYSTEM})
        for j in order[i:i + turns]:
            user, assistant = pairs[j]
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        docs.append(render_chatml(messages))
        i += turns
    return docs


def _paragraphs(rng: random.Random, n: int) -> list[str]:
    """Plain-text paragraphs of 3-6 sentences on one topic: teaches ordinary prose."""
    topics = sorted(TOPIC_SENTENCES)
    docs = [" ".join(TOPIC_SENTENCES[t]) + "\n" for t in topics]  # every sentence at least once
    for _ in range(n):
        topic = rng.choice(topics)
        docs.append(" ".join(rng.sample(TOPIC_SENTENCES[topic], rng.randint(3, 6))) + "\n")
    return docs


def builtin_documents() -> list[str]:
    """The embedded corpus: conversations and paragraphs, deterministic across processes."""
    rng = random.Random(_CORPUS_SEED)  # int seeds give the same stream in every CPython 3.x
    docs = _conversations(rng, chat_pairs(rng)) + _paragraphs(rng, 300)
    rng.shuffle(docs)
    return docs


# ---------------------------------------------------------------------------------------------
# optional: text from the local benchmark files


def truncate_at_sentence(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, at the last sentence end if there is one."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("? "), cut.rfind("! "))
    return cut[:end + 1] if end > 0 else cut.rstrip()


def qa_documents(pairs: Iterable[tuple[str, str]], max_answer_chars: int = 600) -> list[str]:
    """Render (instruction, answer) pairs as single-turn conversations; answers are truncated."""
    docs = []
    for instruction, answer in pairs:
        instruction, answer = instruction.strip(), truncate_at_sentence(answer, max_answer_chars)
        if instruction and answer:
            docs.append(render_chatml([{"role": "user", "content": instruction},
                                       {"role": "assistant", "content": answer}]))
    return docs


def data_dir_documents(max_answer_chars: int = 600) -> list[str]:
    """AlpacaEval instructions with their reference answers, from the data dir (empty without one).

    Reads `alpaca_eval/gpt4_1106_preview/model_outputs.json` through `evalbench.data.resolve`,
    so it follows `--data-dir` / `EVALBENCH_DATA_DIR`; returns [] when no data dir is set (the
    build must never need the network).
    """
    from evalbench.data import data_dir, resolve
    from evalbench.io import read_json

    if data_dir() is None:
        return []
    rows = read_json(resolve("alpaca_eval/gpt4_1106_preview/model_outputs.json"))
    pairs = [(str(r.get("instruction", "")), str(r.get("output", ""))) for r in rows]
    return qa_documents(pairs, max_answer_chars)


def build_corpus(extra_documents: Sequence[str] = (), extra_source: str = "data_dir") -> Corpus:
    """The built-in documents followed by `extra_documents`, with its hash and source names."""
    docs = builtin_documents()
    sources = [f"builtin-v{CORPUS_VERSION}"]
    if extra_documents:
        docs += list(extra_documents)
        sources.append(extra_source)
    return Corpus(tuple(docs), corpus_hash(docs), tuple(sources))
