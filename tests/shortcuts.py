"""What the tests of the shortcuts in front of the app's request cycle (core/shortcut.py) share:
a spy on the requests handed to the app, the app alone as a client, and the app's hooks."""

from werkzeug.test import Client

from core.shortcut import Shortcut


class HandedOver:
    """Counts the requests the shortcut of class `shortcut_class` hands to the app."""

    def __init__(self, app, shortcut_class):
        self.shortcut = app.wsgi_app
        while not isinstance(self.shortcut, shortcut_class):
            # The middleware in front of it: another shortcut, or one wrapping `app` (ProxyFix).
            if isinstance(self.shortcut, Shortcut):
                self.shortcut = self.shortcut.behind
            else:
                self.shortcut = self.shortcut.app
        self.app_cycle = self.shortcut.behind
        self.count = 0

        def counted(environ, start_response):
            self.count += 1
            return self.app_cycle(environ, start_response)

        self.shortcut.behind = counted

    def restore(self):
        self.shortcut.behind = self.app_cycle


def the_app_alone(app, handed_over: HandedOver) -> Client:
    """A client of what is behind the shortcut, the app's own request cycle in the end."""
    return Client(handed_over.app_cycle, app.response_class)


def headers_but_per_request(answer) -> dict[str, str]:
    per_request = {"Set-Cookie", "X-Request-ID", "Date"}
    return {name: value for name, value in answer.headers.items() if name not in per_request}


def cookies_set(answer) -> dict[str, str]:
    """Each cookie set, by name: its attributes without its value and expiry date."""
    cookies = {}
    for line in answer.headers.getlist("Set-Cookie"):
        name, _, rest = line.partition("=")
        attributes = [part.strip() for part in rest.split(";")[1:]]
        cookies[name] = "; ".join(a for a in attributes if not a.startswith("Expires="))
    return cookies


def request_hooks(app) -> dict[str, list[str]]:
    """The names of the app's own before-, after- and teardown-request hooks."""

    def names(hooks) -> list[str]:
        # Flask-Limiter's after-request hook is a functools.partial.
        return sorted(getattr(hook, "__name__", None) or hook.func.__name__ for hook in hooks)

    return {
        "before": names(app.before_request_funcs.get(None, [])),
        "after": names(app.after_request_funcs.get(None, [])),
        "teardown": names(app.teardown_request_funcs.get(None, [])),
    }


def blueprint_hooks(app, blueprint: str) -> list:
    """Any request hook or URL value preprocessor of the blueprint `blueprint`."""
    found = []
    for hooks in (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.url_value_preprocessors,
    ):
        found.extend(hooks.get(blueprint, []))
    return found
