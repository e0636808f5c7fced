"""Review copies (next): the job queue ingest fills (`tables`), workers, recipes and the
reviewer's pages.
"""
