//! Call scheduling: validation, the call state machine, calendar invites and emails.
