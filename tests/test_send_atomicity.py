"""The kernel's half of the rendered gunicorn_workers.OneWriteResponse, checked on this kernel.

The workers send an answer's head and its one-piece body in a single send on nginx's unix stream
socket. The claim that makes this matter: a send the socket's buffer has room for reaches the
peer whole or not at all, however the sender is SIGKILLed. Linux acts on SIGKILL when a system
call returns to the process, or while one waits; a send with room never waits, so it completes,
and the bytes stay queued for the peer after the sender is gone. A send that has to wait for
room (a body larger than the buffer, the peer not reading) is cut where it waited.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux's socket semantics")

# Larger than any JSON answer of the service (1000 rows of predict_proba are well under 100 KB),
# and within a fresh unix stream socket's buffer (net.core.wmem_default, 212992 by default).
ANSWER = 200_000
# Swagger UI's bundle is about 1 MB: more than the buffer holds.
ASSET = 1_048_576
TRIALS = 200


def fork_sender(payload: bytes) -> tuple[int, socket.socket]:
    """A child that sends `payload` on a fresh unix stream socket, then waits to be killed.

    Returns once the child is about to send: its pid, and the receiving end.
    """
    receiver, sender = socket.socketpair()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only os-level calls, then _exit, never back into pytest
        try:
            receiver.close()
            os.close(ready_r)
            os.write(ready_w, b"!")
            sender.sendall(payload)
            while True:
                signal.pause()
        finally:
            os._exit(1)
    sender.close()
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"!"
    os.close(ready_r)
    return pid, receiver


def kill_and_read(pid: int, receiver: socket.socket) -> bytes:
    """SIGKILL the sender, then read what it left queued, to the end of the stream."""
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    received = bytearray()
    with receiver:
        while chunk := receiver.recv(1 << 20):
            received += chunk
    return bytes(received)


def test_an_answer_sized_send_never_waits_for_room():
    receiver, sender = socket.socketpair()
    with receiver, sender:
        sender.setblocking(False)
        assert sender.send(os.urandom(ANSWER)) == ANSWER  # whole, where a wait would be EAGAIN


def test_a_sender_killed_while_it_waits_for_room_leaves_part_of_its_send():
    """The cut a large asset can get: the head and the first part of the body, then the end."""
    payload = os.urandom(ASSET)
    pid, receiver = fork_sender(payload)
    deadline = time.monotonic() + 10
    while process_state(pid) != "S":  # asleep in sendall: the buffer is full, nobody reads
        assert time.monotonic() < deadline, "the sender never waited"
        time.sleep(0.01)
    received = kill_and_read(pid, receiver)
    assert 0 < len(received) < len(payload)
    assert received == payload[: len(received)]


def test_a_sender_killed_around_a_send_with_room_leaves_all_of_it_or_nothing():
    """SIGKILLs at random moments around the send: each leaves none of it, or all of it."""
    payload = os.urandom(ANSWER)
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(TRIALS):
        pid, receiver = fork_sender(payload)
        # A few tens of microseconds either side of the send, which takes about as long.
        spin_until = time.perf_counter() + random.uniform(0, 60e-6)
        while time.perf_counter() < spin_until:
            pass
        received = kill_and_read(pid, receiver)
        if not received:
            outcomes["none"] += 1
        elif received == payload:
            outcomes["whole"] += 1
        else:
            outcomes[f"{len(received)} bytes"] += 1
    print(f"\n{TRIALS} senders SIGKILLed around a {ANSWER}-byte send: {dict(outcomes)}")
    assert set(outcomes) <= {"none", "whole"}, outcomes


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]
