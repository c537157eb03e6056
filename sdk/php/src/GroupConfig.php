<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * The worker's group, as the original library's Slave\Handler::getGroupConfig()
 * exposed it: its name and params (and the command line this script runs with).
 */
final class GroupConfig
{
    /**
     * @param array<string, mixed> $params
     */
    public function __construct(private readonly string $name, private readonly array $params)
    {
    }

    /** The group's name (DISTARCH_GROUP). */
    public function getName(): string
    {
        return $this->name;
    }

    /**
     * The group's params (DISTARCH_PARAMS), JSON objects as arrays.
     *
     * @return array<string, mixed>
     */
    public function getParams(): array
    {
        return $this->params;
    }

    /** This script's command line (the master's argv for it). */
    public function getCommand(): string
    {
        $argv = $_SERVER['argv'] ?? [];
        return implode(' ', is_array($argv) ? array_map('strval', $argv) : []);
    }
}
