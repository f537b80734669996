"""Customer handover (客户继承): an advisor's customers and groups handed to others when they leave or
move, through WeCom's transfer APIs, with retries, escalation and the transfer message reviewed by
compliance (see `service`)."""
