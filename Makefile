# The two commands of the README, plus deploy. Each installs what it needs first.
.PHONY: serve test deploy build bench bench-quick

serve:            ## serve the app on http://127.0.0.1:8787
	bash scripts/serve.sh

test:             ## run every test suite
	bash scripts/test.sh

build:
	bash scripts/build.sh

deploy: build     ## deploy to Cloudflare (needs `npx wrangler login` once)
	EDGE_MEET_SKIP_BUILD=1 npx wrangler deploy

bench:            ## every system, every scenario, side by side (minutes)
	bash bench/run.sh

bench-quick:      ## the same harness in seconds (CI: proves it works, asserts nothing about speed)
	bash bench/run.sh --quick
