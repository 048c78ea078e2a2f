"""Conditions stage: all of a task's conditions must hold for its output to be delivered."""


def failed_condition(ctx, outputs):
    """None when every condition holds, else the reason (the run then ends as a warning, nothing delivered)."""
    return None
