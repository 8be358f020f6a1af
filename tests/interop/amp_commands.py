# SPDX-License-Identifier: MIT
"""
The commands of twine's amp module (protocols/amp.c) as Twisted declares
them, and a Twisted AMP server that answers them the way the module does.

Shared by the interop scripts beside this file: amp_golden.py and
amp_server.py serve with Server, amp_client.py calls the commands.
"""
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Echo(amp.Command):
    arguments = [(b"value", amp.String())]
    response = [(b"value", amp.String())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class Time(amp.Command):
    arguments = []
    response = [(b"now", amp.Float())]


class Delay(amp.Command):
    arguments = [(b"seconds", amp.Float())]
    response = [(b"done", amp.Boolean())]


class Server(amp.AMP):
    """Sum, Echo, Divide and Delay. Delay answers at once; a server that
    really waits overrides delayed_answer."""

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Echo.responder
    def echo(self, value):
        return {"value": value}

    @Divide.responder
    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    @Delay.responder
    def delay(self, seconds):
        return self.delayed_answer(seconds)

    def delayed_answer(self, seconds):
        return {"done": True}
