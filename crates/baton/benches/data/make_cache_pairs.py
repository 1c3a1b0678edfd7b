"""Builds cache-pairs.jsonl: the labelled evaluation set of Baton's semantic cache.

Each line is {"a", "b", "hit", "kind"}: two user turns and whether an answer to `a` may be
served for `b`. Paraphrases (kind "paraphrase") must hit. Near-misses must not: the same
words with another entity ("entity"), a negation ("negation"), another number ("number"),
date ("date") or unit ("unit"), the same entities in another order ("order"), an antonym
("antonym"), or another object or action ("object").

The last 48 near-misses (`hard_near_misses`) are of kinds the second check was not written
for: lowercase names, antonyms, another object or action in the same sentence; only
similarity can keep them apart. The pairs come from templates written by hand for this file, filled with the values below;
running it again gives the same file. `cargo bench --bench cache_eval` reports, per
threshold, how many paraphrases hit and how many near-misses would.

    python3 crates/baton/benches/data/make_cache_pairs.py > crates/baton/benches/data/cache-pairs.jsonl
"""

import json

COUNTRIES = ["France", "Germany", "Japan", "Brazil", "Canada", "Kenya", "Italy", "Spain",
             "Egypt", "Norway", "Mexico", "India", "Chile", "Poland"]
CITIES = ["Paris", "Berlin", "Tokyo", "Toronto", "Nairobi", "Madrid", "Cairo", "Oslo",
          "Lima", "Warsaw", "Lisbon", "Dublin", "Vienna", "Athens"]
BOOKS = [("Hamlet", "Macbeth"), ("Moby-Dick", "Walden"), ("Dracula", "Frankenstein"),
         ("Emma", "Persuasion"), ("Ulysses", "Dubliners"), ("Beloved", "Jazz"),
         ("Dune", "Foundation"), ("Ivanhoe", "Rob Roy"), ("Middlemarch", "Silas Marner"),
         ("Walden", "Excursions"), ("Candide", "Zadig"), ("Lolita", "Pnin")]
TASKS = ["reset my password", "bake sourdough bread", "change a flat tyre",
         "set up a Python virtual environment", "clean a cast iron pan",
         "write a cover letter", "back up my phone", "install a ceiling fan",
         "learn to juggle", "brew cold coffee", "plant tomatoes", "tie a bow tie"]
CONCEPTS = ["recursion", "inflation", "photosynthesis", "public-key cryptography",
            "supply and demand", "machine learning", "compound interest", "entropy",
            "natural selection", "the greenhouse effect", "blockchains", "vaccination"]
DOCS = ["the attached meeting notes", "this quarterly report", "the following article",
        "the email thread below", "this research paper", "the customer feedback below",
        "this contract", "the incident report", "these release notes",
        "the board minutes", "this blog post", "the interview transcript"]
SAFETY = ["coffee", "aspirin", "fasting", "running every day", "microwaving food",
          "eating raw eggs", "swimming after eating", "sleeping with a fan on",
          "drinking tap water", "using a VPN", "charging my phone overnight", "sunbathing"]

def paraphrases():
    for c in COUNTRIES[:12]:
        yield f"What is the capital of {c}?", f"What's the capital city of {c}?"
    for city in CITIES[:12]:
        yield f"What is the population of {city}?", f"How many people live in {city}?"
    for a, _ in BOOKS:
        yield f"Who wrote {a}?", f"Who is the author of {a}?"
    for t in TASKS:
        yield f"How do I {t}?", f"What are the steps to {t}?"
    for c in CONCEPTS:
        yield f"Explain {c} in simple terms.", f"Can you explain {c} simply?"
    for d in DOCS:
        yield f"Summarize {d}.", f"Give me a summary of {d}."
    for s in SAFETY:
        yield f"Is {s} safe?", f"Would you say {s} is safe?"
    for city in CITIES[:12]:
        yield f"What's the weather usually like in {city}?", f"What is the typical weather in {city}?"
    for c in COUNTRIES[:12]:
        yield f"What language do people speak in {c}?", f"Which language is spoken in {c}?"
    for t in TASKS:
        yield f"how do i {t}", f"How can I {t}?"
    for c in CONCEPTS:
        yield f"What is {c}?", f"Define {c}."
    for city in CITIES[:12]:
        yield f"Recommend things to do in {city}.", f"What should I do when visiting {city}?"

def near_misses():
    for i, c in enumerate(COUNTRIES[:12]):
        other = COUNTRIES[(i + 1) % 12]
        yield "entity", f"What is the capital of {c}?", f"What is the capital of {other}?"
    for i, city in enumerate(CITIES[:12]):
        other = CITIES[(i + 1) % 12]
        yield "entity", f"How many people live in {city}?", f"How many people live in {other}?"
    for a, b in BOOKS:
        yield "entity", f"Who wrote {a}?", f"Who wrote {b}?"
    for s in SAFETY:
        yield "negation", f"Is {s} safe?", f"Is {s} not safe?"
    for s in SAFETY:
        yield "negation", f"Why is {s} good for you?", f"Why isn't {s} good for you?"
    for t in TASKS:
        yield "negation", f"Should I {t} myself?", f"Should I never {t} myself?"
    for n, m in [(3, 4), (5, 8), (10, 12), (2, 20), (7, 70), (1, 2), (15, 16), (100, 1000),
                 (6, 9), (30, 40), (250, 500), (12, 21)]:
        yield "number", f"Convert {n} miles to kilometres.", f"Convert {m} miles to kilometres."
    for n, m in [(2, 3), (4, 6), (8, 9), (12, 14), (1, 5), (20, 25), (3, 30), (9, 10),
                 (5, 7), (11, 13), (16, 18), (40, 50)]:
        yield "number", f"What is {n} times 7?", f"What is {m} times 7?"
    for d, e in [("1776", "1789"), ("1914", "1918"), ("1066", "1067"), ("1969", "1972"),
                 ("2001", "2008"), ("1492", "1498"), ("1815", "1812"), ("1945", "1939"),
                 ("1989", "1991"), ("1929", "1933"), ("1517", "1521"), ("1848", "1858")]:
        yield "date", f"What happened in Europe in {d}?", f"What happened in Europe in {e}?"
    for d, e in [("March 3", "March 4"), ("June 1", "July 1"), ("May 9", "May 19"),
                 ("April 2", "April 12"), ("2 May", "3 May"), ("1 January", "1 June"),
                 ("October 5", "October 15"), ("August 8", "August 18"),
                 ("3 March", "13 March"), ("July 4", "July 14"), ("9 November", "8 November"),
                 ("December 25", "December 26")]:
        yield "date", f"Book me a table for {d}.", f"Book me a table for {e}."
    for a, b in [("miles", "kilometres"), ("pounds", "kilograms"), ("Celsius", "Fahrenheit"),
                 ("inches", "centimetres"), ("litres", "gallons"), ("euros", "dollars"),
                 ("hours", "minutes"), ("bytes", "bits"), ("feet", "metres"),
                 ("ounces", "grams"), ("acres", "hectares"), ("knots", "miles per hour")]:
        yield "unit", f"Convert 10 {a} to {b}.", f"Convert 10 {b} to {a}."
    for a, b in [("Paris", "London"), ("Tokyo", "Osaka"), ("Berlin", "Munich"),
                 ("Madrid", "Lisbon"), ("Boston", "Chicago"), ("Oslo", "Bergen"),
                 ("Rome", "Milan"), ("Delhi", "Mumbai"), ("Cairo", "Luxor"),
                 ("Sydney", "Perth"), ("Dublin", "Cork"), ("Vienna", "Prague")]:
        yield "order", f"Find flights from {a} to {b}.", f"Find flights from {b} to {a}."
    for a, b in [("Python", "Rust"), ("tea", "coffee"), ("cats", "dogs"), ("iOS", "Android"),
                 ("stocks", "bonds"), ("Vim", "Emacs"), ("renting", "buying"),
                 ("Mac", "PC"), ("trains", "planes"), ("SQL", "NoSQL"), ("butter", "margarine"),
                 ("email", "chat")]:
        yield "order", f"Why is {a} better than {b}?", f"Why is {b} better than {a}?"

def hard_near_misses():
    """Near-misses the second check was not written for: lowercase names, antonyms, another
    object or action in the same sentence."""
    for i, c in enumerate(COUNTRIES[:12]):
        other = COUNTRIES[(i + 3) % 12]
        yield "entity", f"capital of {c.lower()}", f"capital of {other.lower()}"
    for a, b in [("healthy", "unhealthy"), ("legal", "illegal"), ("possible", "impossible"),
                 ("safe", "dangerous"), ("cheap", "expensive"), ("hot", "cold"),
                 ("increase", "decrease"), ("early", "late"), ("true", "false"),
                 ("allowed", "forbidden"), ("better", "worse"), ("faster", "slower")]:
        yield "antonym", f"Is it {a}?", f"Is it {b}?"
    for a, b in [("bake bread", "bake a cake"), ("delete my account", "create my account"),
                 ("cook rice", "cook pasta"), ("paint a wall", "paint a door"),
                 ("sell my car", "buy a car"), ("learn French", "learn German"),
                 ("fix a leaking tap", "fix a leaking roof"), ("feed a cat", "feed a dog"),
                 ("open a bank account", "close a bank account"),
                 ("grow tomatoes", "grow potatoes"), ("read a file in Python", "write a file in Python"),
                 ("upload a photo", "download a photo")]:
        yield "object", f"How do I {a}?", f"How do I {b}?"
    for a, b in [("the first", "the last"), ("the largest", "the smallest"),
                 ("the oldest", "the newest"), ("the tallest", "the shortest"),
                 ("the richest", "the poorest"), ("the hottest", "the coldest"),
                 ("the longest", "the shortest"), ("the deepest", "the shallowest"),
                 ("the busiest", "the quietest"), ("the most popular", "the least popular"),
                 ("the cheapest", "the most expensive"), ("the fastest", "the slowest")]:
        yield "antonym", f"Which is {a} planet?", f"Which is {b} planet?"

def main():
    pairs = [{"a": a, "b": b, "hit": True, "kind": "paraphrase"} for a, b in paraphrases()]
    pairs += [{"a": a, "b": b, "hit": False, "kind": k} for k, a, b in near_misses()]
    pairs += [{"a": a, "b": b, "hit": False, "kind": k} for k, a, b in hard_near_misses()]
    for pair in pairs:
        print(json.dumps(pair, sort_keys=True))

main()
