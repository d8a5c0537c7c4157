"""Found by the omniq app when Django starts, like every installed app's ``tasks`` module."""

from omniq.integrations.django import task


@task(max_retries=2)
def word_count(text: str) -> int:
    return len(text.split())
