//! Live call conversation state machine: turns, barge-in, marks.
