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


def count_of(count, singular, plural=None):
    """`1 task`, `3 tasks`: messages with the right plural."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


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


def not_found(request, exception=None):
    return render(request, "404.html", {"message": str(exception or "") or "There is no such page."}, status=404)


def server_error(request):
    # No context processors' data is trusted here: the page names no user and no detail of the failure.
    return render(request, "500.html", status=500)


class Page(list):
    """One page of a queryset read with one query and no COUNT (fast on a task with a million runs): it knows
    whether there are newer and older pages, not how many."""

    def __init__(self, queryset, number, per_page):
        rows = list(queryset[(number - 1) * per_page:number * per_page + 1])
        super().__init__(rows[:per_page])
        self.number = number
        self.has_previous = number > 1
        self.has_next = len(rows) > per_page
        self.has_other_pages = self.has_previous or self.has_next
        self.previous_page_number = number - 1
        self.next_page_number = number + 1
