"""Campaigns: marketers' rules on top of proximity events (targets, schedules, caps, budgets). Not built yet."""
