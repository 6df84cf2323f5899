"""The LLM client's parts that know nothing of reports: the shared rate-limit bucket in the
warehouse (rate_limit) and token prices (pricing)."""
