# The everyday commands. Each one sets up .venv (Python 3.10) on first use.
SHELL := /bin/bash
.PHONY: run shell test train validate evaluate evaluate-knowledge evaluate-routing benchmark benchmark-whatsapp benchmark-turn benchmark-scheduling benchmark-reminders benchmark-broadcast benchmark-cluster report purge backup restore copy-to-postgres image lint clean

run:        ## Run the assistant + WhatsApp simulator; chat in the browser (trains first if needed)
	@bash scripts/run.sh

shell:      ## Chat with the assistant in the terminal instead
	@bash scripts/shell.sh

test:       ## Run every test (unit, model, dialogue stories, servers)
	@bash scripts/test.sh

train:      ## Train models/assistant.tar.gz (skipped when nothing changed)
	@bash scripts/train.sh

validate:   ## Check data, domain and config with Rasa's validator
	@bash scripts/bootstrap.sh && . scripts/env.sh && python scripts/validate.py

evaluate:   ## NLU per language (en/ru/zh) and overall: 5-fold CV + 20% held-out split of one multilingual model; reports in results/nlu/[holdout/]<lang>/ (ARGS=--help)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python scripts/evaluate_nlu.py $(ARGS)

evaluate-knowledge:  ## Answers from the clinic's documents per language: top-1, refusals, unapproved answers, p95 latency on 1,000 passages (ARGS=--fit|--ranking|--compare|--also RULE_JSON|--verbose|--tune)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python scripts/evaluate_knowledge.py $(ARGS)

evaluate-routing:  ## Document questions the NLU takes for a curated FAQ topic: how many now get the right passage, and FAQ examples that would leave their text (needs models/assistant.tar.gz; ARGS=--verbose)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python scripts/evaluate_routing.py $(ARGS)

benchmark:  ## Time a cold `rasa train` and print the model size
	@bash scripts/bootstrap.sh && . scripts/env.sh && python scripts/benchmark_train.py

benchmark-whatsapp:  ## WhatsApp path: webhook ack latency, e2e vs REST, outbound send rate
	@bash scripts/train.sh && . scripts/env.sh && python -m benchmarks.whatsapp_bench

benchmark-turn:  ## Cost of a dialogue turn over REST: latency, turns/s, growth over 200 turns, 10 patients; vs the stock rasa init bot (ARGS=--help)
	@bash scripts/train.sh && . scripts/env.sh && python -m benchmarks.turn_bench $(ARGS)

benchmark-scheduling:  ## Slot search / booking latency, 100,000 slots (SQLite; ARGS=--postgres for PostgreSQL)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m benchmarks.scheduling_bench $(ARGS)

benchmark-reminders:  ## Reminder dispatch rate: N due jobs → scheduler → Rasa → simulator
	@bash scripts/train.sh && . scripts/env.sh && python -m benchmarks.reminders_bench

benchmark-broadcast:  ## Health-tip broadcast: 10,000 recipients → simulator (rate, duplicates, losses, pacing, crash)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m benchmarks.broadcast_bench $(ARGS)

benchmark-cluster:  ## Rasa replicas 1, 2, 3 in one cluster (PostgreSQL, Redis, door, relay): turns/s, p50/p95, CPU per turn per process, replicas for Meta's 80 and 1,000 msg/s (ARGS=--help)
	@bash scripts/train.sh && . scripts/env.sh && python -m benchmarks.cluster_bench $(ARGS)

report:     ## Analytics report: containment, handoffs, first response, reminders, no-shows, CSAT, delivery (+ plots)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m clinic.analytics report $(ARGS)

purge:      ## Delete what is past its retention period (content/clinic.yml, retention:), counts to the audit log (ARGS=--dry-run)
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m clinic.retention purge $(ARGS)

backup:     ## Back up the databases and key files to backups/ (0600; ARGS="<dir-or-file> --keys-separately <path>|--without-keys")
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m clinic.operations.backup create $(or $(ARGS),backups)

restore:    ## Restore a backup archive, services stopped (ARGS="<archive> [--force]")
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m clinic.operations.backup restore $(ARGS)

copy-to-postgres:  ## Copy the SQLite databases to PostgreSQL, services stopped (ARGS="--to postgresql://… --tracker-to postgresql://…")
	@bash scripts/bootstrap.sh && . scripts/env.sh && python -m clinic.operations.copy_to_postgres $(ARGS)

image:      ## Build the container image clinic-assistant:latest (base images, wheels from the pip cache; README, "Deploying")
	@bash deploy/build-image.sh

lint:       ## Ruff, and mypy (strict on whatsapp/ and gateway/: pyproject.toml)
	@bash scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/mypy

clean:      ## Remove models, results and local runtime data (not .venv)
	rm -rf models results var .rasa
