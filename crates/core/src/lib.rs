//! SheetGPT domain: tables, extraction, versions, templates and export writers. Pure logic:
//! no async, no database, no HTTP.
