import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventBudget } from '../../src/controller/event-budget.ts';

describe('EventBudget', () => {
  test('a burst of Normal Events is cut at the burst size, refills at its rate, and Warnings always pass', () => {
    let now = 0;
    let dropped = 0;
    const budget = new EventBudget({ perSecond: 10, burst: 30, onDrop: () => { dropped += 1; } }, () => now);
    const first = Array.from({ length: 100 }, () => budget.take('Normal')).filter(Boolean).length;
    assert.equal(first, 30);
    assert.equal(budget.take('Warning'), true, 'a Warning with no budget left');
    now += 500;
    assert.equal(Array.from({ length: 20 }, () => budget.take('Normal')).filter(Boolean).length, 5, 'half a second: five more');
    now += 60_000;
    assert.equal(Array.from({ length: 100 }, () => budget.take('Normal')).filter(Boolean).length, 30, 'never more than the burst after a quiet minute');
    assert.equal(budget.droppedCount(), 70 + 15 + 70);
    assert.equal(dropped, budget.droppedCount());
  });
});
