"""Studies beside the lab's rush: a request's cost in process, the coupon count, Redis durability."""
