"""What is sent and when, no Locust: prompts, datasets, the tokenizer, shared prefixes,
traces, conversations and arrival processes."""
