"""The gold engine: one week's reports. The orchestrator (report_writer) and its parts: the
plan (planning), the tally, the claims keeper, the recorder (rows, spool), the ways of asking
behind one interface (asking: offline_asking, async_writer, batch_asking
over batches); the API session and resource (openai_client) and what an answer says
(answers); the tables' statements (ledger), the prompt, the report's schema, the offline
writer's rules and the grounding checker (grounding/)."""
