"""Writers: XDMF fields, CSV/JSON time series and summaries, reports."""
