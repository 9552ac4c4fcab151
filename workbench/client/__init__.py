"""Python clients of the two services, and the token they present."""
