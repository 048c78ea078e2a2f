"""Notifications: emails (and SMS through email gateways) after a run ends."""


def notify(run):
    """Send the task's notifications for the run's final status. Never raises."""
    return []
