# The two commands of the README, plus deploy. Each installs what it needs first.
.PHONY: help serve test deploy build bench bench-quick

serve:            ## serve the app on http://127.0.0.1:8787
	bash scripts/serve.sh

test:             ## run every test suite
	bash scripts/test.sh

build:            ## build the Worker bundle into build/
	bash scripts/build.sh

deploy: build     ## deploy to Cloudflare (needs `npx wrangler login` once)
	EDGE_MEET_SKIP_BUILD=1 npx wrangler deploy

bench:            ## every system, every scenario, side by side (minutes)
	bash bench/run.sh

bench-quick:      ## the same harness in seconds (CI: proves it works, asserts nothing about speed)
	bash bench/run.sh --quick

# Last, so that a bare `make` still serves.
help:             ## list the targets
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
