"""Login limits (django-axes hooks named in settings): who the visitor is, and the page a locked-out one sees."""
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.shortcuts import render


class LoginLimitBackend(AxesStandaloneBackend):
    """django-axes' check, first in AUTHENTICATION_BACKENDS, for logins that come with a request.

    The limit counts per user *and address*; a call without a request (the test client's `login()`, a script)
    has no address to count against, so it is left to the password check instead of being refused outright.
    Every web login (the login page, the admin's) passes its request, so every one of those is counted.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request):
    """The visitor's address for counting failed logins.

    Directly served, it is the socket's peer (REMOTE_ADDR). Behind a reverse proxy (ETL_BEHIND_PROXY=1) every
    request comes from the proxy, so the address is the last X-Forwarded-For entry: the one the proxy itself
    appended. Earlier entries come from the client and could be forged to dodge the limit.
    """
    if settings.ETL_BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """The page after too many failed logins: the site's look, HTTP 429, and when to try again."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    return render(request, "registration/locked_out.html", {
        "username": username, "failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes,
    }, status=429)
