"""``clagent chat``: an interactive terminal chat with streamed answers and feedback commands."""

from __future__ import annotations

import click

from clagent.cli.client import Client
from clagent.errors import ClagentError

HELP = """Commands:
  /up                 rate the last answer as good
  /down               rate the last answer as bad
  /correct TEXT       say what the last answer should have been
  /new                start a new conversation
  /help               show this help
  /quit               leave (Ctrl-D works too)"""


def run_chat(client: Client, system: str | None = None, max_tokens: int | None = None,
             temperature: float | None = None) -> None:
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    conversation: str | None = None
    last_id: str | None = None
    click.echo("clagent chat: type a message, /help for commands, /quit to leave.")
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            click.echo()
            return
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd in ("/quit", "/exit"):
                return
            if cmd == "/help":
                click.echo(HELP)
            elif cmd == "/new":
                messages = [m for m in messages if m["role"] == "system"]
                conversation, last_id = None, None
                click.echo("(new conversation)")
            elif cmd in ("/up", "/down", "/correct"):
                if last_id is None:
                    click.echo("(nothing to rate yet)")
                    continue
                body = {"interaction_id": last_id}
                if cmd == "/correct":
                    if not arg.strip():
                        click.echo("usage: /correct TEXT")
                        continue
                    body.update(rating="down", correction=arg.strip())
                else:
                    body["rating"] = cmd[1:]
                try:
                    client.request("POST", "/v1/clagent/feedback", json=body)
                    click.echo("(feedback recorded)")
                except ClagentError as e:
                    click.echo(f"(error: {e})", err=True)
            else:
                click.echo(f"unknown command {cmd}; /help lists them")
            continue

        messages.append({"role": "user", "content": line})
        params = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
        click.echo("clagent> ", nl=False)
        answer = []
        try:
            for chunk in client.stream_chat(messages, conversation, **params):
                conversation = chunk.get("_conversation") or conversation
                last_id = chunk["id"]
                delta = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if delta:
                    answer.append(delta)
                    click.echo(delta, nl=False)
        except ClagentError as e:
            click.echo()
            click.echo(f"(error: {e})", err=True)
            messages.pop()
            continue
        except KeyboardInterrupt:
            click.echo(" (interrupted)")
        click.echo()
        messages.append({"role": "assistant", "content": "".join(answer)})
