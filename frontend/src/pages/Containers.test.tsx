import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { RunForm } from './Containers';
import { fakeFetch, json, renderApp } from '../test/render';

afterEach(() => vi.unstubAllGlobals());

describe('RunForm', () => {
  it('creates the container with the command split into words', async () => {
    const ff = fakeFetch([['/v1/containers', () => json({ container: { id: 'c1', name: 'web' } })]]);
    vi.stubGlobal('fetch', ff.fetch);
    const created = vi.fn();
    renderApp(<RunForm onCreated={created} />);
    const form = within(screen.getByTestId('run-form'));
    fireEvent.change(form.getByLabelText('Image'), { target: { value: 'cc-demo' } });
    fireEvent.change(form.getByLabelText('Command'), { target: { value: `/bin/busybox sh -c 'echo "hello world"'` } });
    fireEvent.change(form.getByLabelText('Name'), { target: { value: 'web' } });
    fireEvent.click(form.getByRole('button', { name: 'Run' }));
    await waitFor(() => expect(created).toHaveBeenCalledWith({ id: 'c1', name: 'web' }));
    const call = ff.calls.find((c) => c.init.method === 'POST')!;
    expect(JSON.parse(String(call.init.body))).toEqual({
      name: 'web',
      spec: { image: 'cc-demo', command: ['/bin/busybox', 'sh', '-c', 'echo "hello world"'], env: [] },
    });
  });

  it('shows the API refusal plainly', async () => {
    vi.stubGlobal('fetch', fakeFetch([['/v1/containers', () => json({ code: 3, message: 'image "nope" is not loaded on any node: load it with ccctl image load' }, 400)]]).fetch);
    renderApp(<RunForm />);
    const form = within(screen.getByTestId('run-form'));
    fireEvent.change(form.getByLabelText('Image'), { target: { value: 'nope' } });
    fireEvent.click(form.getByRole('button', { name: 'Run' }));
    expect((await form.findByRole('alert')).textContent).toMatch(/image "nope" is not loaded/);
  });
});
