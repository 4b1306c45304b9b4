"""The lab's data: members and coupons seeded at scale, and access tokens for them."""
