"""The clinic's approved documents as a source of answers (issue 17): ingestion (PDF, HTML,
Markdown, text), the review workflow (draft → approved / rejected → retired), and lexical
search that quotes an approved passage with its source. No Rasa inside."""
