"""Streaming: the Kafka broker, the live producer, the fraud rules and the long-running streaming job."""
