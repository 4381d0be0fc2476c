"""The Flower server side of a run: transport, roster, validated FedAvg, test-set evaluation."""
