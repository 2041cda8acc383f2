"""Real-time events: ``presage stream`` (docs/streaming.md)."""

STREAMED: tuple[str, ...] = ("web_events", "campaign_events")  # the raw sources the stream reads
