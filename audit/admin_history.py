"""The admin's per-object "History" page, read-only and without secrets.

SimpleHistoryAdmin's own change column and its "view this version" form would show decrypted values
(a sensitive parameter's value, in the form) and offer a revert that bypasses the portal's checks; this
mixin renders the same masked entries as the portal's history pages instead, and has no version form.
"""
from django.contrib.admin.utils import unquote
from django.shortcuts import redirect
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from audit.changes import describe, with_labels


class SafeHistoryAdmin(SimpleHistoryAdmin):
    object_history_list_template = "audit/admin_history_list.html"
    history_list_per_page = 50

    def get_history_queryset(self, request, history_manager, pk_name, object_id):
        queryset = history_manager.filter(**{pk_name: object_id}).order_by("-history_date", "-history_id")
        return with_labels(queryset)

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        records = list(historical_records)
        if not records:
            return
        # The list is newest first, so each record's previous version is the next one; only the last
        # on the page needs a query for its own.
        oldest = records[-1]
        before = with_labels(type(oldest).objects.filter(id=oldest.id, history_id__lt=oldest.history_id))
        before = before.order_by("-history_id").first()
        pairs = list(zip(records, records[1:] + [before]))
        for record, entry in zip(records, describe(pairs)):
            record.audit = entry

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        opts = self.model._meta
        return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[unquote(object_id)]))
