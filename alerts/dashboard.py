"""The dashboard's "late and missed" part: `late_alerts_context(user)` gives what
templates/runs/_dashboard_late.html renders (include it with that context merged into the page's)."""
from alerts.models import Alert

DASHBOARD_ALERTS = 50


def late_alerts_context(user, limit=DASHBOARD_ALERTS):
    """{"late_alerts": the open alerts `user` may see, newest first, at most `limit` (one query),
    "late_alerts_more": whether there are more}."""
    alerts = list(Alert.objects.for_dashboard(user, limit + 1))
    return {"late_alerts": alerts[:limit], "late_alerts_more": len(alerts) > limit}
