"""Task families with programmatic answers for the cascade benchmark: prompts, gold answers, graders.

Eleven families, several templates each, with easy and hard variants, so a 135M model is right on some
items and wrong on others. Each item is deterministic for its seed. `grade(item, answer)` is the ground
truth the benchmark uses: a large tier that always answers correctly closes exactly the gap it leaves.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

NAMES = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Irene",
    "Jonas",
    "Keiko",
    "Liam",
)
NAMES += (
    "Maria",
    "Nadia",
    "Omar",
    "Paula",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
)
CITIES = ("Paris", "Berlin", "Madrid", "Lisbon", "Vienna", "Oslo", "Dublin", "Prague", "Warsaw", "Athens")
CITIES += ("Tokyo", "Toronto", "Chicago", "Nairobi", "Lima", "Seoul", "Cairo", "Sydney", "Munich", "Milan")
COUNTRIES_EASY = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
}
COUNTRIES_EASY |= {"the United Kingdom": "London", "Russia": "Moscow", "China": "Beijing", "Egypt": "Cairo"}
COUNTRIES_HARD = {"Australia": "Canberra", "Canada": "Ottawa", "Turkey": "Ankara", "Brazil": "Brasilia"}
COUNTRIES_HARD |= {
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Portugal": "Lisbon",
    "Chile": "Santiago",
}
COUNTRIES_HARD |= {"Mongolia": "Ulaanbaatar", "Bhutan": "Thimphu", "Estonia": "Tallinn", "Ghana": "Accra"}
COUNTRIES_HARD |= {
    "Uruguay": "Montevideo",
    "Laos": "Vientiane",
    "Slovenia": "Ljubljana",
    "Nepal": "Kathmandu",
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
MONTHS += ("November", "December")
POSITIVE = ("wonderful", "excellent", "fantastic", "great", "delightful", "superb", "amazing", "lovely")
NEGATIVE = ("terrible", "awful", "horrible", "disappointing", "dreadful", "useless", "broken", "poor")
PRODUCTS = ("headphones", "hotel room", "pizza", "novel", "movie", "laptop", "sofa", "concert", "app", "bike")
TOPICS: dict[str, tuple[str, ...]] = {
    "sports": (
        "The striker scored twice as the team won the league final",
        "The tennis champion lost in straight sets at the open",
        "The marathon runner broke the course record on Sunday",
        "The coach was sacked after five straight defeats",
        "The goalkeeper saved a penalty in the last minute of the match",
    ),
    "politics": (
        "Parliament passed the budget after a long debate",
        "The prime minister called an early election",
        "Senators voted against the new immigration bill",
        "The opposition leader resigned after the party lost the vote",
        "The president signed a treaty with two neighbouring countries",
    ),
    "technology": (
        "The company released a faster smartphone chip",
        "A new software update fixes a security flaw in the browser",
        "Engineers unveiled a robot that sorts parcels",
        "The startup launched a cloud service for developers",
        "Researchers built a battery that charges in five minutes",
    ),
    "food": (
        "The chef opened a restaurant serving fresh pasta",
        "This recipe for chocolate cake needs only four ingredients",
        "Bakers report rising prices for flour and butter",
        "A street market sells spicy noodles and dumplings",
        "The cookbook explains how to roast vegetables",
    ),
}
LABEL_SYSTEM = "You are a helpful assistant. Answer briefly."


@dataclass(frozen=True)
class TaskItem:
    """One prompt with a checkable answer. `gold` is what a correct answer contains (JSON for `extract`)."""

    family: str
    template: str
    difficulty: str  # "easy" | "hard": by construction, not measured
    system: str
    prompt: str
    gold: str


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)]


def _grade_number(item: TaskItem, answer: str) -> bool:
    """The answer's last number equals the gold number (the usual convention for word problems)."""
    numbers = _numbers(answer)
    return bool(numbers) and abs(numbers[-1] - float(item.gold)) < 1e-6


def _grade_json(item: TaskItem, answer: str) -> bool:
    """The answer's first JSON object has exactly the gold fields (strings case-insensitive)."""
    match = re.search(r"\{.*?\}", answer, re.DOTALL)
    if not match:
        return False
    try:
        payload = json.loads(match.group(0))
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    gold = json.loads(item.gold)
    if set(payload) != set(gold):
        return False
    return all(str(payload[key]).strip().lower() == str(value).lower() for key, value in gold.items())


def _grade_label(item: TaskItem, answer: str, labels: tuple[str, ...]) -> bool:
    """Exactly one of the labels is named, and it is the gold one."""
    words = set(re.findall(r"[a-z]+", answer.lower()))
    named = [label for label in labels if label in words]
    return named == [item.gold]


def _grade_contains(item: TaskItem, answer: str) -> bool:
    """The gold string appears in a short answer (a long one may list several candidates)."""
    return item.gold.lower() in answer.lower() and len(answer) <= 200


def _grade_exact(item: TaskItem, answer: str) -> bool:
    """The answer is the gold text (case-sensitive), give or take quotes, a final period and one line of
    framing ("Sure: APPLE")."""
    lines = [line.strip().strip("\"'`*").rstrip(".").strip() for line in answer.strip().splitlines()]
    candidates = [line for line in lines if line]
    return bool(candidates) and len(candidates) <= 2 and candidates[-1].split(": ")[-1] == item.gold


def _make_extract(rng: random.Random) -> TaskItem:
    name, age, city = rng.choice(NAMES), rng.randint(18, 90), rng.choice(CITIES)
    other = rng.randint(2, 15)
    forms = [
        ("name_age", "easy", f"{name} is {age} years old.", {"name": name, "age": age}),
        ("name_city", "easy", f"{name} lives in {city}.", {"name": name, "city": city}),
        (
            "full",
            "hard",
            f"{name}, aged {age}, moved to {city} last year.",
            {"name": name, "age": age, "city": city},
        ),
        (
            "distractor",
            "hard",
            f"After {other} years abroad, {name} ({age}) settled in {city}.",
            {"name": name, "age": age, "city": city},
        ),
        ("city_only", "easy", f"The conference will be held in {city} this spring.", {"city": city}),
    ]
    template, difficulty, sentence, gold = rng.choice(forms)
    keys = ", ".join(f'"{k}"' for k in gold)
    example = json.dumps({k: ("..." if isinstance(v, str) else 0) for k, v in gold.items()})
    prompt = (
        f"Extract the fields {keys} from this sentence and reply with JSON only, like {example}.\n{sentence}"
    )
    return TaskItem("extract", template, difficulty, LABEL_SYSTEM, prompt, json.dumps(gold))


def _make_arithmetic(rng: random.Random) -> TaskItem:
    a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 9)
    name = rng.choice(NAMES)
    forms = [
        ("add", "easy", f"What is {a} + {b}?", a + b),
        ("sub", "easy", f"What is {a + b} - {b}?", a),
        ("mul", "hard", f"What is {a} times {c}?", a * c),
        (
            "story_add",
            "easy",
            f"{name} has {a} apples and buys {b} more. How many apples does {name} have?",
            a + b,
        ),
        (
            "story_two_step",
            "hard",
            f"{name} buys {c} boxes with {a} pens each and gives away {b} pens. How many pens are left?",
            c * a - b,
        ),
        ("big_add", "hard", f"What is {a * 37 + 100} + {b * 53 + 100}?", a * 37 + b * 53 + 200),
    ]
    template, difficulty, question, gold = rng.choice(forms)
    prompt = f"{question} Answer with the number only."
    return TaskItem("arithmetic", template, difficulty, LABEL_SYSTEM, prompt, str(gold))


def _make_sentiment(rng: random.Random) -> TaskItem:
    product = rng.choice(PRODUCTS)
    positive = rng.random() < 0.5
    word, other = (
        (rng.choice(POSITIVE), rng.choice(NEGATIVE))
        if positive
        else (rng.choice(NEGATIVE), rng.choice(POSITIVE))
    )
    forms = [
        ("plain", "easy", f"The {product} was {word}."),
        ("exclaim", "easy", f"What a {word} {product}!"),
        ("contrast", "hard", f"I expected the {product} to be {other}, but honestly it was {word}."),
        ("negated", "hard", f"I would not call the {product} {other}; it was {word}."),
    ]
    template, difficulty, review = rng.choice(forms)
    prompt = f"Is the sentiment of this review positive or negative? Answer with one word.\nReview: {review}"
    gold = "positive" if positive else "negative"
    return TaskItem("sentiment", template, difficulty, LABEL_SYSTEM, prompt, gold)


def _make_topic(rng: random.Random) -> TaskItem:
    topic = rng.choice(sorted(TOPICS))
    headline = rng.choice(TOPICS[topic])
    forms = [
        ("headline", "easy", f"Headline: {headline}."),
        ("news", "easy", f"News: {headline}, reports said today."),
        ("quoted", "hard", f'A reader wrote: "I just read that {headline[0].lower() + headline[1:]}."'),
    ]
    template, difficulty, text = rng.choice(forms)
    labels = ", ".join(sorted(TOPICS))
    prompt = f"Classify the topic of this text as one of: {labels}. Answer with one word.\n{text}"
    return TaskItem("topic", template, difficulty, LABEL_SYSTEM, prompt, topic)


def _make_conversion(rng: random.Random) -> TaskItem:
    n = rng.randint(2, 12)
    forms = [
        ("m_to_cm", "easy", f"How many centimetres are in {n} metres?", n * 100),
        ("h_to_min", "easy", f"How many minutes are in {n} hours?", n * 60),
        ("km_to_m", "easy", f"Convert {n} kilometres to metres.", n * 1000),
        ("kg_to_g", "easy", f"How many grams are in {n} kilograms?", n * 1000),
        ("days_to_h", "hard", f"How many hours are in {n} days?", n * 24),
        ("min_to_s", "hard", f"How many seconds are in {n} minutes?", n * 60),
        ("weeks_to_days", "hard", f"How many days are in {n} weeks?", n * 7),
    ]
    template, difficulty, question, gold = rng.choice(forms)
    return TaskItem(
        "conversion",
        template,
        difficulty,
        LABEL_SYSTEM,
        f"{question} Answer with the number only.",
        str(gold),
    )


def _make_date(rng: random.Random) -> TaskItem:
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    name = MONTHS[month - 1]
    forms = [
        ("iso_given", "easy", f"The invoice is dated {year}-{month:02d}-{day:02d}."),
        ("long", "easy", f"The concert takes place on {name} {day}, {year}."),
        ("day_first", "hard", f"We met on {day} {name} {year} in the park."),
        ("ordinal", "hard", f"Her birthday party was on the {day}{_suffix(day)} of {name}, {year}."),
    ]
    template, difficulty, sentence = rng.choice(forms)
    prompt = (
        f"Write the date in this sentence in the format YYYY-MM-DD. Answer with the date only.\n{sentence}"
    )
    return TaskItem("date", template, difficulty, LABEL_SYSTEM, prompt, f"{year}-{month:02d}-{day:02d}")


def _suffix(day: int) -> str:
    return "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _make_capital(rng: random.Random) -> TaskItem:
    hard = rng.random() < 0.6
    country, city = rng.choice(sorted((COUNTRIES_HARD if hard else COUNTRIES_EASY).items()))
    forms = [
        ("question", f"What is the capital of {country}?"),
        ("fill", f"The capital city of {country} is which city?"),
        ("name", f"Name the capital of {country}."),
    ]
    template, question = rng.choice(forms)
    prompt = f"{question} Answer with the city name only."
    return TaskItem("capital", template, "hard" if hard else "easy", LABEL_SYSTEM, prompt, city)


FACTS_TRUE = (
    "Paris is in France",
    "Water is wet",
    "A week has seven days",
    "The sun is a star",
    "Dogs are animals",
    "Ice is frozen water",
    "Tokyo is in Japan",
    "A triangle has three sides",
    "Bananas are fruit",
    "Fish live in water",
)
FACTS_FALSE = (
    "Paris is in Spain",
    "A week has five days",
    "The moon is a planet",
    "Cats are plants",
    "Snow is hot",
    "Berlin is in Italy",
    "A square has five sides",
    "Carrots are animals",
    "Birds have four legs",
    "The sea is made of sand",
)
WORDS = ("apple", "river", "garden", "window", "yellow", "pencil", "rocket", "silver", "planet", "coffee")
WORDS += ("music", "forest", "orange", "bridge", "winter", "camera", "dragon", "letter", "butter", "island")
KINDS: dict[str, tuple[str, ...]] = {
    "animal": ("dog", "cat", "horse", "lion", "rabbit", "eagle", "shark", "tiger"),
    "fruit": ("apple", "banana", "cherry", "mango", "pear", "grape", "lemon", "peach"),
    "vehicle": ("car", "bus", "truck", "bicycle", "train", "airplane", "tractor", "scooter"),
}
DOMAINS = ("example.com", "mail.org", "shop.net", "uni.edu")


def _make_yesno(rng: random.Random) -> TaskItem:
    true = rng.random() < 0.5
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    while a == b:
        b = rng.randint(2, 60)
    forms = [
        ("fact", "easy", f"{rng.choice(FACTS_TRUE if true else FACTS_FALSE)}.", true),
        ("compare", "hard", f"{a} is greater than {b}.", a > b),
        ("even", "hard", f"{a} is an even number.", a % 2 == 0),
    ]
    template, difficulty, claim, answer = rng.choice(forms)
    prompt = f"Is this statement true? Answer yes or no.\n{claim}"
    return TaskItem("yesno", template, difficulty, LABEL_SYSTEM, prompt, "yes" if answer else "no")


def _make_transform(rng: random.Random) -> TaskItem:
    word, other = rng.sample(WORDS, 2)
    name = rng.choice(NAMES)
    forms = [
        ("upper", "easy", f"Write this word in capital letters: {word}", word.upper()),
        ("repeat", "easy", f"Repeat exactly, and nothing else: {name} {word}", f"{name} {word}"),
        ("lower", "easy", f"Write this word in lowercase letters: {word.upper()}", word),
        ("join", "hard", f'Join these two words with a hyphen: "{word}" and "{other}"', f"{word}-{other}"),
        ("first", "hard", f"What is the first word of this sentence? {name} bought a {word} today.", name),
    ]
    template, difficulty, prompt, gold = rng.choice(forms)
    return TaskItem(
        "transform", template, difficulty, LABEL_SYSTEM, f"{prompt}\nAnswer with the result only.", gold
    )


def _make_lookup(rng: random.Random) -> TaskItem:
    name, city = rng.choice(NAMES), rng.choice(CITIES)
    email = f"{name.lower()}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
    number = rng.randint(100, 9999)
    forms = [
        ("email", "easy", f"Contact {name} at {email} for details.", "email address", email),
        ("city", "easy", f"{name} flew to {city} on Monday.", "city", city),
        ("name", "easy", f"Yesterday {name} called the office about the delivery.", "person's name", name),
        (
            "order",
            "hard",
            f"Your order {number} ships from {city} in {rng.randint(2, 9)} days.",
            "order number",
            str(number),
        ),
    ]
    template, difficulty, text, what, gold = rng.choice(forms)
    prompt = f"What is the {what} in this text? Answer with it only.\n{text}"
    return TaskItem("lookup", template, difficulty, LABEL_SYSTEM, prompt, gold)


def _make_kind(rng: random.Random) -> TaskItem:
    kind = rng.choice(sorted(KINDS))
    thing = rng.choice(KINDS[kind])
    forms = [
        ("bare", "easy", f"Is a {thing} an animal, a fruit or a vehicle?"),
        ("sentence", "hard", f"I saw a {thing} near the market. Is it an animal, a fruit or a vehicle?"),
    ]
    template, difficulty, question = rng.choice(forms)
    return TaskItem("kind", template, difficulty, LABEL_SYSTEM, f"{question} Answer with one word.", kind)


MAKERS: dict[str, Callable[[random.Random], TaskItem]] = {
    "extract": _make_extract,
    "arithmetic": _make_arithmetic,
    "sentiment": _make_sentiment,
    "topic": _make_topic,
    "conversion": _make_conversion,
    "date": _make_date,
    "capital": _make_capital,
    "yesno": _make_yesno,
    "transform": _make_transform,
    "lookup": _make_lookup,
    "kind": _make_kind,
}
FAMILIES = tuple(MAKERS)


def grade(item: TaskItem, answer: str) -> bool:
    """Whether `answer` is correct for `item` (the benchmark's ground truth)."""
    if item.family == "extract":
        return _grade_json(item, answer)
    if item.family in ("arithmetic", "conversion"):
        return _grade_number(item, answer)
    if item.family == "sentiment":
        return _grade_label(item, answer, ("positive", "negative", "neutral", "mixed"))
    if item.family == "topic":
        return _grade_label(item, answer, tuple(sorted(TOPICS)))
    if item.family == "date":
        return item.gold in answer
    if item.family == "yesno":
        return _grade_label(item, answer, ("yes", "no"))
    if item.family == "kind":
        return _grade_label(item, answer, tuple(sorted(KINDS)))
    if item.family == "transform":
        return _grade_exact(item, answer)
    return _grade_contains(item, answer)


def make_items(per_family: int, seed: int) -> list[TaskItem]:
    """`per_family` distinct items of each family (fewer when a family has fewer distinct prompts)."""
    rng = random.Random(seed)
    items: list[TaskItem] = []
    for maker in MAKERS.values():
        seen: dict[str, TaskItem] = {}
        for _ in range(per_family * 20):
            if len(seen) >= per_family:
                break
            item = maker(rng)
            seen.setdefault(item.prompt, item)
        items.extend(seen.values())
    rng.shuffle(items)
    return items
