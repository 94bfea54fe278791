"""The ops console: a small server-rendered web app over the brokers and databases, for clinic operators."""
