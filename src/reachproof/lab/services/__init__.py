"""The lab's services: one asyncio supervisor listening inside every lab namespace."""
