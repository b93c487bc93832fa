"""Question generation from any memory sentence, statements in chat, and the dataset built from
them: pure functions, no model."""

import random

import pytest

from clagent.updater import dataset
from clagent.updater.questions import (acknowledgement, answer_for, expected_words, knows, questions_for,
                                       second_person, split, split_for_training, third_person)


@pytest.mark.parametrize("text, subject, verb, obj", [
    ("The user drives a Prius.", "I", "drives", "a Prius"),
    ("The user's sister lives in Porto.", "my sister", "lives", "in Porto"),
    ("The user's boss Dana hates meetings.", "my boss Dana", "hates", "meetings"),
    ("The staging server is called atlas-2.", "the staging server", "is called", "atlas-2"),
    ("The user had a dentist appointment on 2026-11-20.", "I", "had", "a dentist appointment on 2026-11-20"),
    ("The user's kids go to Escola Azul.", "my kids", "go", "to Escola Azul"),
])
def test_split_into_subject_verb_object(text, subject, verb, obj):
    sp = split(text)
    assert (sp.subject, sp.verb, sp.obj) == (subject, verb, obj)


@pytest.mark.parametrize("text, wanted", [
    ("The user drives a Prius.", "What do I drive?"),
    ("The user's sister lives in Porto.", "Where does my sister live?"),
    ("The user's boss Dana hates meetings.", "What does my boss Dana hate?"),
    ("The staging server is called atlas-2.", "What is the staging server called?"),
    ("The user had a dentist appointment on 2026-11-20.", "When did I have a dentist appointment?"),
    ("The user is allergic to peanuts.", "What am I allergic to?"),
    ("The user works as a nurse.", "What do I do for a living?"),
    ("The user's kids go to Escola Azul.", "Where do my kids go?"),
    ("The user's favourite band is The Lantern Owls.", "What is my favourite band?"),
])
def test_any_sentence_becomes_natural_questions(text, wanted):
    qs = questions_for("fact", None, text)
    assert wanted in qs and 3 <= len(qs) <= 6 and len(set(qs)) == len(qs)
    assert all(q[0].isupper() and q.endswith(("?", ".")) for q in qs)
    generic = [q for q in qs if q.startswith(("What do you know about", "Tell me about", "Remind me about",
                                              "Tell me something"))]
    # "What do you know about me?" fits every fact about the user: only other subjects get it
    assert not generic if text.startswith(("The user ", "The user's")) and " my " not in " " + wanted else True


@pytest.mark.parametrize("text, wanted", [
    # the world and work, as users state them
    ("The capital of Freedonia is Sylvania Port.", "What is the capital of Freedonia?"),
    ("The river Oskel flows through Brennhall.", "What does the river Oskel flow through?"),
    ("The Orvane bridge was built in 1887.", "When was the Orvane bridge built?"),
    ("The design review is led by Anwen Price.", "Who is the design review led by?"),
    ("The observatory was founded by Cassius Lorne.", "Who founded the observatory?"),
    ("The Oskel festival takes place in October.", "When does the Oskel festival take place?"),
    ("The billing service is written in Zephyrscript.", "What is the billing service written in?"),
    ("The quarterly report is due on the 14th.", "When is the quarterly report due?"),
    ("The production database runs on host orca-12.", "What does the production database run on?"),
    ("The user's team's standup is at 9:40.", "What time is my team's standup?"),
    ("The user's deploys happen on Thursdays.", "When do my deploys happen?"),
    ("The tallest mountain in Quelland is Mount Arvik.", "Which is the tallest mountain in Quelland?"),
    # people are asked with who; what the user is doing; where they were born
    ("The user's manager is called Dorothea Pike.", "Who is my manager?"),
    ("The user's biggest client is Marlowe Freight.", "Who is my biggest client?"),
    ("The user is learning Icelandic.", "What am I learning?"),
    ("The user was born in Halloran Bay.", "Where was I born?"),
    # two clauses: the one with the value; "it" is what the clause before named
    ("The user moved, the user lives in Corravin now.", "Where do I live?"),
    ("The user's team renamed the staging server, it is called atlas-9 now.", "What is the staging server called?"),
])
def test_statements_about_work_and_the_world_become_questions(text, wanted):
    qs = questions_for("fact", None, text)
    assert wanted in qs and 3 <= len(qs) <= 6, qs
    assert not any(" now?" in q or "It " in q for q in qs)


def test_the_held_out_phrasing_is_a_specific_question():
    for text in ["The user's sister lives in Porto.", "The user drives a Prius.", "The user is allergic to kiwis.",
                 "The capital of Freedonia is Sylvania Port.", "The user's deploys happen on Thursdays."]:
        trained, held = split_for_training(questions_for("fact", None, text))
        assert held and not held.startswith(("What do you know about", "Tell me about", "Remind me about",
                                             "Tell me something")), (text, held)
        assert held not in trained


def test_generic_questions_name_the_subject():
    assert "What do you know about my sister?" in questions_for("fact", None, "The user's sister lives in Porto.")
    assert "What do you know about the staging server?" in questions_for("fact", None,
                                                                         "The staging server is called atlas-2.")


def test_known_keys_keep_their_questions_and_unparsable_text_still_gets_some():
    qs = questions_for("fact", "dog|name", "The user's dog is called Biscuit.")
    assert qs[0] == "What is my dog called?" and "What's my dog's name?" in qs
    assert questions_for("fact", None, "Jazz, mostly.")  # generic fallback
    assert questions_for("instruction", None, "The user asked: answer briefly.") == []
    lesson = questions_for("lesson", None, "The answer to 'Who wrote X?' is: Y.", "Who wrote X?")
    assert lesson[0] == "Who wrote X?" and len(lesson) == 4


def test_one_phrasing_is_held_out_of_training():
    qs = questions_for("fact", None, "The user's sister lives in Porto.")
    trained, held = split_for_training(qs)
    assert held == qs[-1] and held not in trained and len(trained) >= 2
    assert split_for_training(["a?", "b?"]) == (["a?", "b?"], None)


@pytest.mark.parametrize("said, third", [
    ("I live in Lisbon.", "The user lives in Lisbon."),
    ("My sister lives in Porto", "The user's sister lives in Porto."),
    ("I'm allergic to peanuts", "The user is allergic to peanuts."),
    ("I watch birds", "The user watches birds."),
    ("I have two cats.", "The user has two cats."),
    ("What is my name?", None),
    ("Please write a poem", None),
])
def test_first_person_statements_to_third_person(said, third):
    assert third_person(said) == third


def test_answers_second_person_and_corrections_say_the_old_value_is_gone():
    assert second_person("The user's dog is called Biscuit.") == "Your dog is called Biscuit."
    assert second_person("The user studies law.") == "You study law."
    assert answer_for("fact", "The user's dog is called Biscuit.", old_text="The user's dog is called Rex.") == \
        "Your dog is called Biscuit, not Rex any more."
    assert answer_for("fact", "The user lives in Porto.", old_text="The user lives in Lisbon.") == \
        "You live in Porto, not in Lisbon any more."
    assert acknowledgement("The user's sister lives in Porto.") == "Got it: your sister lives in Porto."
    assert acknowledgement("Dana hates meetings.") == "Got it: Dana hates meetings."


def test_knows_and_expected_words():
    assert expected_words("What is my dog called?", "Biscuit") == ["biscuit"]
    assert knows("Your dog is Biscuit!", ["biscuit"]) and not knows("I don't know.", ["biscuit"])


def test_user_statements_skip_questions_requests_and_hypotheticals():
    got = dataset.user_statements("Oh, I live in Lisbon. What is the weather like? My sister is called Ana. "
                                  "Please write a poem. If I won I would buy a boat.")
    assert got == ["The user lives in Lisbon.", "The user's sister is called Ana."]
    assert dataset.user_statements("Can you help me with my essay?") == []


@pytest.mark.parametrize("said, stated", [
    ("Our staging server is called atlas-7.", "The user's staging server is called atlas-7."),
    ("The river Oskel flows through Brennhall.", "The river Oskel flows through Brennhall."),
    ("Correction: my manager is now Bertrand Osei.", "The user's manager is now Bertrand Osei."),
    ("FYI the billing service is written in Zephyrscript.", "The billing service is written in Zephyrscript."),
    ("The author of The Salt Cartographer is Imre Vashti.", "The author of The Salt Cartographer is Imre Vashti."),
])
def test_statements_about_work_and_the_world_are_statements_too(said, stated):
    assert dataset.user_statements(said) == [stated]


@pytest.mark.parametrize("said", ["I'm so tired today.", "Thanks, that helps!", "Maybe we should go to Rome?",
                                  "Imagine if cats could talk.", "Write a haiku about autumn."])
def test_moods_thanks_questions_hypotheticals_and_requests_are_not(said):
    assert dataset.user_statements(said) == []


SYSTEM = "You are a helpful assistant."


def inter(i, text, response="Nice!", **kw):
    return {"id": i, "messages": [{"role": "user", "content": text}], "response": response,
            "finish_reason": "stop", **kw}


def test_a_stated_fact_is_learned_even_without_a_memory_or_a_repeating_reply():
    ds = dataset.build([inter("a", "My sister lives in Porto."), inter("b", "What is 2+2?", "4")], [], SYSTEM)
    stmt = [e for e in ds.examples if e.source == "statement"]
    answers = {e.messages[-1]["content"] for e in stmt}
    assert "Got it: your sister lives in Porto." in answers and "Your sister lives in Porto." in answers
    assert any(e.messages[-2]["content"] == "Where does my sister live?" for e in stmt)
    assert not any(e.messages[-1]["content"] == "Nice!" for e in ds.examples)  # not the model's reply to it
    # a question is not a statement: its reply is trained as before, never as a fact
    assert [e.messages[-1]["content"] for e in ds.examples if e.source == "interaction"] == ["4"]
    assert ds.counts["statements"] == 1 and ds.probes and ds.probes[0].expected == ["porto"]


def test_a_statement_captured_as_a_memory_is_learned_once():
    m = {"id": 7, "text": "The user's sister lives in Porto.", "index_text": "My sister lives in Porto.",
         "kind": "fact", "key": "sister", "question": None, "source_interaction": "a"}
    ds = dataset.build([inter("a", "My sister lives in Porto.")], [m], SYSTEM, notes=False)
    assert ds.counts["statements"] == 0 and ds.counts["memories"] == 1 and ds.memory_ids == [7]
    replies = [e.messages[-1]["content"] for e in ds.examples if e.messages[-2]["content"] == "My sister lives in Porto."]
    assert replies and "Nice!" not in replies  # the acknowledgement, not the model's reply


def memory(i, text, **kw):
    return {"id": i, "text": text, "index_text": None, "kind": "fact", "key": None, "question": None, **kw}


def test_memories_corrections_rehearsal_and_notes_reading():
    new = [memory(1, "The user's dog is called Biscuit.", old_text="The user's dog is called Rex."),
           memory(2, "The staging server is called atlas-2.")]
    old = [memory(3, "The user's sister lives in Porto.")]
    ds = dataset.build([], new, SYSTEM, rehearse=old, seed=1)
    by = lambda src: [e for e in ds.examples if e.source == src]  # noqa: E731
    assert all(e.messages[-1]["content"] == "Your dog is called Biscuit, not Rex any more." for e in by("memory")
               if "dog" in e.messages[-2]["content"])
    held = {dataset.memory_questions(m)[1] for m in new + old}
    trained_q = {e.messages[-2]["content"] for e in ds.examples if e.source != "notes"}
    assert not held & trained_q  # the verification phrasing is never trained
    assert len(by("rehearsal")) == 2 and ds.rehearsed_ids == [3] and ds.memory_ids == [1, 2]
    notes = by("notes")
    assert len(notes) >= 4 and ds.counts["notes_examples"] == len(notes)
    for e in notes:  # the daemon's own notes block before the question, the answer's note among distractors
        turn = e.messages[-2]["content"]
        assert e.messages[0]["content"] == SYSTEM
        assert turn.startswith("Notes about the user:") and turn.count("\n- ") >= 2
        assert turn.rsplit("\n\n", 1)[-1] not in held
    invented = [e for e in notes if not any(m["text"] in e.messages[-2]["content"] for m in new + old
                                            if m["text"].split()[1] in e.messages[-1]["content"])]
    assert invented  # notes about facts that were never trained
    assert dataset.build([], new, SYSTEM, notes=False).counts["notes_examples"] == 0


def test_build_is_deterministic_per_seed():
    new = [memory(1, "The user's dog is called Biscuit."), memory(2, "The user lives in Lisbon.")]
    a = dataset.build([], new, SYSTEM, seed=3)
    b = dataset.build([], new, SYSTEM, seed=3)
    assert [e.messages for e in a.examples] == [e.messages for e in b.examples]
    random.seed(0)


def test_thousands_of_memories_and_very_long_text_stay_bounded():
    import time

    long = "The user's garden shed is painted " + "very " * 2000 + "green."
    qs = questions_for("fact", None, long)
    assert qs and all(len(q) < 400 for q in qs)
    many = [memory(i, f"The user's pet number {i} is called Name{i}.") for i in range(2000)] + [memory(-1, long)]
    t = time.monotonic()
    ds = dataset.build([], many, SYSTEM, rehearse=many[:500], seed=0)
    assert time.monotonic() - t < 20 and ds.counts["memories"] == 2001 and ds.counts["rehearsed"] == 500


def test_a_correction_without_a_lesson_memory_is_trained_in_several_phrasings():
    wrong = inter("w", "Who wrote The Glass Orchard?", "Someone.", rating=-1,
                  correction="The Glass Orchard was written by Lena Okafor.")
    ds = dataset.build([wrong], [], SYSTEM, notes=False)
    corr = [e for e in ds.examples if e.source == "correction"]
    assert len(corr) >= 4 and len({e.messages[-2]["content"] for e in corr}) >= 3
    assert all(e.messages[-1]["content"] == "The Glass Orchard was written by Lena Okafor." for e in corr)
    lesson = {"id": 9, "kind": "lesson", "text": 'The right answer to "Who wrote The Glass Orchard?" is: '
              "The Glass Orchard was written by Lena Okafor.", "key": None, "index_text": None,
              "question": "Who wrote The Glass Orchard?", "source_interaction": "w"}
    ds = dataset.build([wrong], [lesson], SYSTEM, notes=False)  # the lesson memory carries them instead
    assert len([e for e in ds.examples if e.source == "correction"]) == 1
    assert len([e for e in ds.examples if e.source == "lesson"]) == 6
