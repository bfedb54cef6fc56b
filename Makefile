# Aliases of ./run for those who type make: each target sets up what it needs (see ./run).
.PHONY: demo test bench docs lint typecheck
demo test bench docs lint typecheck:
	./run $@
