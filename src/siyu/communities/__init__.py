"""Communities (社群): customer group chats kept in step with WeCom, positioning, tags and group sets."""
