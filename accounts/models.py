"""A person's own settings: for now, the time zone every page shows times in."""
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_zone(value):
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value} is not a time zone name (such as Europe/Paris or UTC).")


class UserPreference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_zone],
        help_text="Times in pages are shown in this zone. Blank: the project's zone on project and task pages, "
                  "the portal's elsewhere.")

    class Meta:
        verbose_name = "user preference"

    def __str__(self):
        return f"Preferences of {self.user}"
