//! Post-incident documents: the event timeline and the rollback playbook.
