"""The gold engine: one week's reports. The writer (report_writer) and its event-loop path
(async_writer), the Batch API (batches), claims and the ledger (ledger), the spool, the prompt,
the report's schema, the offline writer, the OpenAI client and resource (openai_client), and
the grounding checker (grounding/)."""
