//! Tables out of text (filled in by the extraction work).
