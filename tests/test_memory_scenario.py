"""The fast memory on the embedded SmolLM2 through the HTTP API: facts stated (and corrected) in one
conversation are answered in another; a correction given as feedback is used the next time."""

import re

import httpx
import pytest

from tests.conftest import start_daemon

pytestmark = pytest.mark.smollm2

STATEMENTS = [
    "Hi, my name is Maria.", "I live in Porto with my family.", "My dog is called Rex.",
    "I work as a nurse at the city hospital.", "My daughter is called Ana.", "My favorite color is green.",
    "I'm allergic to peanuts.", "I drive a red Fiat.", "My birthday is on March 3.", "I play the cello.",
    # corrections, later in the same conversation
    "Sorry, my mistake. My dog is actually called Biscuit.", "Actually I moved to Lisbon last year.",
    "Hmm, my favourite colour is blue now.",
]
QUESTIONS = [  # (question, current value, superseded value)
    ("What is my name?", "maria", None), ("Where do I live?", "lisbon", "porto"),
    ("What is my dog called?", "biscuit", "rex"), ("What is my job?", "nurse", None),
    ("What is my daughter's name?", "ana", None), ("What is my favorite color?", "blue", "green"),
    ("What am I allergic to?", "peanut", None), ("What car do I drive?", "fiat", None),
    ("When is my birthday?", "march", None), ("What instrument do I play?", "cello", None),
]


def test_facts_from_one_conversation_answer_the_next(smollm2_home):
    daemon = start_daemon(smollm2_home)
    try:
        client = daemon.openai()
        history = []
        for s in STATEMENTS:
            history.append({"role": "user", "content": s})
            r = client.chat.completions.create(model="clagent", messages=history, temperature=0, max_tokens=30,
                                               extra_headers={"X-Clagent-Conversation": "A"})
            history.append({"role": "assistant", "content": r.choices[0].message.content})
        correct, stale, report = 0, 0, []
        for question, current, old in QUESTIONS:
            r = client.chat.completions.create(model="clagent", temperature=0, max_tokens=40,
                                               messages=[{"role": "user", "content": question}],
                                               extra_headers={"X-Clagent-Conversation": "B"})
            answer = r.choices[0].message.content
            correct += bool(re.search(rf"\b{current}", answer, re.I))
            stale += bool(old and re.search(rf"\b{old}\b", answer, re.I))
            report.append(f"{question} -> {answer!r}")
        print(f"\nmemory scenario: {correct}/{len(QUESTIONS)} current, {stale} superseded\n" + "\n".join(report))
        assert correct >= 8, report
        assert stale == 0, report
        # without memory the weights alone do not know these facts
        blind = client.chat.completions.create(model="clagent", temperature=0, max_tokens=40, extra_body={"memory": False},
                                               messages=[{"role": "user", "content": "What is my dog called?"}])
        assert "biscuit" not in blind.choices[0].message.content.lower()
    finally:
        daemon.stop()


def test_a_correction_given_as_feedback_is_used_next_time(smollm2_home):
    daemon = start_daemon(smollm2_home)
    try:
        client = daemon.openai()
        question = "Who wrote the novel The Glass Orchard?"
        first = client.chat.completions.create(model="clagent", temperature=0, max_tokens=40,
                                               messages=[{"role": "user", "content": question}])
        assert "okafor" not in first.choices[0].message.content.lower()
        fb = httpx.post(f"{daemon.url}/v1/clagent/feedback", timeout=60, json={
            "interaction_id": first.id, "rating": "down", "correction": "The Glass Orchard was written by Lena Okafor."})
        assert fb.json()["lesson"]["memory"]["kind"] == "lesson"
        again = client.chat.completions.create(model="clagent", temperature=0, max_tokens=40,
                                               messages=[{"role": "user", "content": question}],
                                               extra_headers={"X-Clagent-Conversation": "later"})
        assert "okafor" in again.choices[0].message.content.lower()
    finally:
        daemon.stop()
