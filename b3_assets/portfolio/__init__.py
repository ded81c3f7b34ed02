"""The day's IBOV portfolio: collect, landing, refined, checks, sensors, schedules."""
