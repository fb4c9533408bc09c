"""Operations built on the engine and the plan: backup, prune, drill, status, alerts, checklists, history."""
