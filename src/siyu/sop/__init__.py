"""SOP (标准作业程序): planned content that goes out on its own — group SOP calendars per group set,
customer SOP journeys relative to an event, and the Moments calendar."""
