"""Links back to the portal in what leaves it (emails, webhooks): ETL_BASE_URL plus the page's path."""
from django.conf import settings
from django.urls import reverse


def absolute(path):
    return f"{settings.ETL_BASE_URL}{path}"


def run_url(run_id):
    return absolute(reverse("runs:detail", args=[run_id]))


def task_url(task_id):
    return absolute(reverse("tasks:detail", args=[task_id]))
