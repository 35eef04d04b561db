"""Run names as Prefect makes them: two random words, ``adjective-animal``."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "able", "agile", "amber", "ancient", "arcane", "bold", "brave", "bright", "brisk", "calm", "candid",
    "clever", "cobalt", "cosmic", "crimson", "curious", "daring", "dazzling", "eager", "electric", "elegant",
    "emerald", "fancy", "fearless", "fiery", "gentle", "giant", "glossy", "golden", "graceful", "happy",
    "hidden", "honest", "humble", "icy", "jolly", "keen", "kind", "lively", "lucky", "lunar", "magenta",
    "mellow", "merry", "mighty", "misty", "modest", "nimble", "noble", "olive", "opal", "patient", "polite",
    "proud", "quick", "quiet", "radiant", "rapid", "royal", "rugged", "rustic", "sage", "scarlet", "serene",
    "sharp", "shiny", "silent", "silver", "sleek", "smart", "smooth", "solar", "spry", "steady", "stellar",
    "sturdy", "sunny", "swift", "tan", "teal", "tidy", "tough", "tranquil", "true", "turquoise", "vivid",
    "warm", "wise", "witty", "zealous", "zippy",
)  # fmt: skip
ANIMALS = (
    "albatross", "alpaca", "antelope", "badger", "beagle", "bear", "beaver", "bison", "bobcat", "buffalo",
    "caracal", "cheetah", "chipmunk", "cobra", "condor", "cougar", "coyote", "crane", "dingo", "dolphin",
    "eagle", "egret", "elk", "falcon", "ferret", "finch", "fox", "gazelle", "gecko", "gibbon", "gopher",
    "grouse", "hare", "hawk", "hedgehog", "heron", "hyena", "ibis", "iguana", "impala", "jackal", "jaguar",
    "kestrel", "kingfisher", "koala", "lemur", "leopard", "lion", "llama", "lynx", "magpie", "malkoha",
    "mallard", "marmot", "marten", "mink", "mongoose", "moose", "narwhal", "newt", "ocelot", "okapi",
    "oriole", "osprey", "otter", "owl", "panda", "panther", "parrot", "pelican", "penguin", "puffin", "puma",
    "quail", "rabbit", "raccoon", "raven", "robin", "salamander", "seal", "shrew", "sparrow", "stoat",
    "swan", "tapir", "tiger", "toucan", "turtle", "viper", "walrus", "weasel", "wolf", "wombat", "yak", "zebra",
)  # fmt: skip


def generate_run_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}"
