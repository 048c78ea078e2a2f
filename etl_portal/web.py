"""Small helpers every view uses to read request values: a bad value is a 400 with a message, never a 500."""
from django.core.exceptions import BadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


def int_param(request, name, default=None, minimum=None, maximum=None, source=None):
    """An integer from the query string (or `source`), within bounds; BadRequest (400) names the problem."""
    raw = (source if source is not None else request.GET).get(name, "")
    if str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {str(raw)[:40]!r}.") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise BadRequest(f"{name} must be between {minimum} and {maximum}.")
    return value


def safe_next(request, fallback, *args):
    """Redirect to the `next` the form sent (or the referring page) only if it stays on this site."""
    target = request.POST.get("next") or request.GET.get("next") or request.META.get("HTTP_REFERER")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)


def bad_request(request, exception=None):
    return render(request, "400.html", {"message": str(exception or "") or "The request was not understood."},
                  status=400)


def forbidden(request, exception=None):
    return render(request, "403.html", {"message": str(exception or "") or "You may not do that."}, status=403)
