"""Service quality (服务质量): first-reply waits in working time read from the chat archive, reply-timeout
alerts and the daily report per advisor (see `service`; `siyu quality report`)."""
