"""The rule-based extractor: what becomes a memory, with which key, and what must not."""

import pytest

from clagent.memory.extract import extract

POSITIVE = [
    ("My name is Maria.", "The user's name is Maria.", "fact", "name"),
    ("call me Jo", "The user's name is Jo.", "fact", "name"),
    ("my dog is called Rex", "The user's dog is called Rex.", "fact", "dog|name"),
    ("My dog's name is Rex!", "The user's dog is called Rex.", "fact", "dog|name"),
    ("Actually, my dog is called Biscuit, not Rex.", "The user's dog is called Biscuit.", "fact", "dog|name"),
    ("my dog is Biscuit", "The user's dog is called Biscuit.", "fact", "dog|name"),
    ("My dog is a labrador.", "The user's dog is a labrador.", "fact", "dog|is"),
    ("My daughter is called Ana and she is 7.", "The user's daughter is called Ana.", "fact", "daughter|name"),
    ("I live in Porto.", "The user lives in Porto.", "fact", "home location"),
    ("I moved to Lisbon last year", "The user lives in Lisbon.", "fact", "home location"),
    ("I'm living in Berlin these days", "The user lives in Berlin.", "fact", "home location"),
    ("I work as a nurse.", "The user works as a nurse.", "fact", "job"),
    ("I work at the city hospital", "The user works at the city hospital.", "fact", "employer"),
    ("My favourite colour is green.", "The user's favourite colour is green.", "preference", "favorite color|is"),
    ("My favorite color is blue", "The user's favorite color is blue.", "preference", "favorite color|is"),
    ("I am allergic to peanuts", "The user is allergic to peanuts.", "fact", "allergic to peanuts"),
    ("I drive a red Fiat", "The user drives a red Fiat.", "fact", "car"),
    ("I love jazz music", "The user loves jazz music.", "preference", "opinion on jazz music"),
    ("I don't like olives", "The user does not like olives.", "preference", "opinion on olives"),
    ("I am 34 years old", "The user is 34 years old.", "fact", "age"),
    ("I have a cat named Luna", "The user has a cat called Luna.", "fact", "cat|name"),
    ("I have two kids", "The user has two kids.", "fact", "number of kids"),
    ("I was born in Madrid", "The user was born in Madrid.", "fact", "born in"),
    ("I'm from Brazil", "The user is from Brazil.", "fact", "origin"),
    ("my sister's name is Julia", "The user's sister is called Julia.", "fact", "sister|name"),
    ("Remember that the wifi password is hunter2", "The wifi password is hunter2.", "fact", "wifi password|is"),
    ("remember: my wife's birthday is May 3", "The user's wife's birthday is May 3.", "fact", "wife's birthday|is"),
]


@pytest.mark.parametrize("text,expected,kind,key", POSITIVE)
def test_statements_become_memories(text, expected, kind, key):
    [c] = extract(text)
    assert (c.text, c.kind, c.key) == (expected, kind, key)


def test_instructions_and_explicit_notes():
    [c] = extract("From now on, answer in French.")
    assert c.kind == "instruction" and "answer in French" in c.text and c.key is None
    [c] = extract("Please always keep answers short")
    assert c.kind == "instruction"
    [c] = extract("remember to buy milk")
    assert c.explicit and c.text == "The user wants to remember to buy milk."
    [c] = extract("Remember that I parked on level 3")
    assert c.explicit and c.text == "The user parked on level 3."


def test_several_statements_in_one_message():
    found = extract("Hi! My name is Maria and I live in Porto. I work as a teacher, and my cat is Tom.")
    assert [c.key for c in found] == ["name", "home location", "job", "cat|name"]


@pytest.mark.parametrize("text", [
    "What is my dog called?", "where do I live", "Do you know my name?", "If my name were Bob, what then?",
    "Imagine I lived in Paris.", "My question is about cars.", "My point is that it works.",
    "I think so.", "I'm a bit tired.", "Tell me a joke about my dog.", "His dog is called Max.",
    "The weather is nice today.", "Write a poem where my name is Zed.", "my dog is not Rex",
    "", "   ", "ok", "Thanks!",
])
def test_not_memories(text):
    assert extract(text) == []


def test_first_person_index_text_for_matching_questions():
    [c] = extract("My dog is called Biscuit.")
    assert c.index_text == "My dog is called Biscuit."
