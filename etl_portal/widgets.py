"""Pickers for lists that grow with the data (thousands of tasks, hundreds of projects or people).

A plain <select> renders every choice on every page view: at 10,000 tasks the task form's "Runs after" picker
alone took 2 s. A `SearchSelect` lists every choice while there are at most `LIST_UP_TO` (a short list reads
best as a list); beyond that it renders only the chosen option(s) and a search box, which asks a search URL
(`?q=...`) for the matching choices; static/js/search-picker.js adds the one picked to the select. The field's
queryset still decides on the server what may be chosen: a value posted from outside it is refused with the
field's usual error.
"""
from django import forms
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode

LIST_UP_TO = 50


class SearchSelect(forms.Select):
    """A model choice picker for long lists; `search_url` (a URL name) answers a search with an HTML fragment of
    `[data-pick-value]` buttons (templates/widgets/_pick_matches.html). `search_params` (set per form) go
    along, e.g. the task being edited, so that it is not offered as its own upstream."""

    def __init__(self, search_url, placeholder="Type to search…", attrs=None):
        super().__init__(attrs)
        self.search_url = search_url
        self.placeholder = placeholder
        self.search_params = {}
        self.cut = False

    def __deepcopy__(self, memo):
        copy = super().__deepcopy__(memo)
        copy.search_params = dict(self.search_params)
        return copy

    def optgroups(self, name, value, attrs=None):
        """Every choice when they are few, else only the chosen values: at most two queries whatever the
        number of choices. Select's own rendering does the rest."""
        iterator = self.choices
        field = getattr(iterator, "field", None)
        if field is None:  # plain choices: nothing to leave out
            return super().optgroups(name, value, attrs)
        first = list(iterator.queryset[:LIST_UP_TO + 1])
        self.cut = len(first) > LIST_UP_TO
        if self.cut:
            chosen = [item for item in value if str(item).isdigit()]
            first = list(iterator.queryset.filter(pk__in=chosen)) if chosen else []
        shown = [("", field.empty_label)] if field.empty_label is not None and not self.allow_multiple_selected else []
        shown += [(item.pk, field.label_from_instance(item)) for item in first]
        self.choices = shown
        try:
            return super().optgroups(name, value, attrs)
        finally:
            self.choices = iterator

    def render(self, name, value, attrs=None, renderer=None):
        select = super().render(name, value, attrs, renderer)
        if not self.cut:
            return select
        params = {key: value for key, value in self.search_params.items() if value not in (None, "")}
        url = reverse(self.search_url) + ("?" + urlencode(params) if params else "")
        widget_id = (attrs or {}).get("id") or self.attrs.get("id") or name
        return render_to_string("widgets/search_picker.html", {
            "select": select, "url": url, "id": widget_id, "placeholder": self.placeholder})


class SearchSelectMultiple(SearchSelect):
    allow_multiple_selected = True

    def value_from_datadict(self, data, files, name):
        getter = getattr(data, "getlist", None)
        return getter(name) if getter else data.get(name)

    def value_omitted_from_data(self, data, files, name):
        return False  # an empty multi-select posts nothing, which means "none chosen"
