"""Shows every time of a request in the viewer's zone: their own setting when they chose one."""
import zoneinfo

from django.utils import timezone


def user_zone(user):
    """The zone the user chose on /account/, or None (then the project's or the portal's zone applies)."""
    if not user.is_authenticated:
        return None
    preference = getattr(user, "_zone_preference", False)
    if preference is False:
        from accounts.models import UserPreference
        preference = UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first()
        user._zone_preference = preference
    return preference or None


def activate_zone(request, default=None):
    """Activate the viewer's zone, or `default` (such as the project's zone) when they chose none."""
    zone = user_zone(request.user) or default
    if zone:
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        activate_zone(request)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
